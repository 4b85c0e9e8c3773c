"""What this device is: CPU model and the instruction-set flags that matter for inference,
cores, memory and the inference runtimes installed. Published in the retained status so the
hub can show it and match rollouts to hardware.

Runtimes are described without importing them: importing ONNX Runtime and OpenVINO just to
list them would cost an agent that serves LiteRT ~80 MB of memory and a second of start-up.
At start each runtime is looked up in the installed packages (``find_spec`` and package
metadata): ``{"available": true, "version": ..., "package": ..., "devices": null,
"probed": false}``. Once a runtime is loaded to serve a model (:func:`runtime_loaded`,
called by the server on every swap) it is probed -- cheap then, it is imported anyway --
and its entry in every published description is replaced by the probe's answer
(``devices`` filled in, ``probed: true``, or ``available: false`` with a ``reason`` when
the installed package turns out to be broken).

``memory_available_mb`` is free memory now, the smallest of the system's, the cgroup's and
RLIMIT_AS's (edge/runtime/memory.py; ``memory_available_source`` names which): a variant
whose ``requires.memory_mb`` is larger is not run here (edge/contract/requirements.py).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import sys
import threading
import weakref
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any

from edge.errors import RuntimeMissingError
from edge.runtime.backends.base import BACKEND_MODULES, runtime_info
from edge.runtime.cpuinfo import read as read_cpuinfo
from edge.runtime.memory import available as memory_available

# Per runtime: (importable top-level module, distribution names), in preference order,
# as each backend module declares them.
RUNTIME_PACKAGES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    runtime: runtime_info(runtime).packages for runtime in BACKEND_MODULES
}

# Flags that change which kernels a runtime can use (x86 SIMD / VNNI / AMX, Arm NEON / dot).
INTERESTING_FLAGS = (
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
    "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16",
    "neon", "asimd", "asimddp", "fphp", "asimdhp", "sve", "sve2", "i8mm", "bf16",
)  # fmt: skip


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo"), machine: str | None = None) -> dict[str, Any]:
    """CPU model, architecture and interesting flags, read right on x86 and Arm
    (edge/runtime/cpuinfo.py); ``source`` says where from, ``note`` why it cannot tell."""
    machine = machine or platform.machine()
    if not sys.platform.startswith("linux") and not cpuinfo.exists():
        model = platform.processor() or "unknown"  # macOS, Windows: no /proc/cpuinfo
        return {"model": model, "arch": machine, "flags": [], "source": "platform"}
    return read_cpuinfo(cpuinfo, machine, INTERESTING_FLAGS)


def memory_mb() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**20, 1)
    except Exception:
        try:
            return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20, 1)
        except (ValueError, OSError, AttributeError):
            return None


class RuntimeMap(dict[str, dict[str, Any]]):
    """``capabilities["runtimes"]``; entries are replaced in place as runtimes get probed."""


_published: weakref.WeakValueDictionary[int, RuntimeMap] = weakref.WeakValueDictionary()
_probed: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()


def _installed(runtime: str) -> dict[str, Any]:
    """What the installed packages say about ``runtime``, without importing it."""
    for module, distributions in RUNTIME_PACKAGES[runtime]:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            continue
        ver, package = "unknown", module
        for dist in distributions:
            try:
                ver, package = package_version(dist), dist
                break
            except PackageNotFoundError:
                continue
        return {
            "available": True,
            "version": ver,
            "package": package,
            "devices": None,
            "probed": False,
        }
    names = " or ".join(d[0] for _m, d in RUNTIME_PACKAGES[runtime][:2])
    no_wheel = runtime_info(runtime).no_wheel()  # e.g. onnxruntime on armv7l
    reason = f"not installed: {no_wheel}" if no_wheel else f"not installed (pip install {names})"
    return {"available": False, "reason": reason}


def installed_runtime(runtime: str) -> dict[str, Any]:
    """``{"available", "version", "package", ...}`` of ``runtime`` from the installed
    packages' metadata, without importing it: what an exporter records as the version a
    variant was evaluated with (``requires.runtime_version``)."""
    if runtime not in RUNTIME_PACKAGES:
        return {"available": False, "reason": f"unknown runtime {runtime!r}"}
    return _installed(runtime)


def probe_runtime(runtime: str) -> dict[str, Any]:
    """The backend's own ``probe()`` (imports the runtime); cached. Never raises."""
    with _lock:
        if runtime in _probed:
            return _probed[runtime]
    try:
        module = importlib.import_module(BACKEND_MODULES[runtime])
        info: dict[str, Any] = {**module.probe(), "probed": True}
    except RuntimeMissingError as exc:
        info = {"available": False, "reason": str(exc), "probed": True}
    except Exception as exc:  # a broken runtime install is reported, never fatal
        info = {"available": False, "reason": f"{type(exc).__name__}: {exc}", "probed": True}
    with _lock:
        _probed[runtime] = info
    return info


def describe_runtimes() -> RuntimeMap:
    """Every known runtime: probed already, or as the installed packages describe it.

    A runtime whose package this process has imported anyway is probed right away."""
    runtimes = RuntimeMap()
    for runtime in BACKEND_MODULES:
        imported = any(m in sys.modules for m, _d in RUNTIME_PACKAGES.get(runtime, ()))
        if runtime in _probed or (imported and BACKEND_MODULES[runtime] in sys.modules):
            runtimes[runtime] = probe_runtime(runtime)
        elif runtime in RUNTIME_PACKAGES:
            runtimes[runtime] = _installed(runtime)
    with _lock:
        _published[id(runtimes)] = runtimes
    return runtimes


def runtime_loaded(runtime: str) -> None:
    """``runtime`` now serves a model here: probe it (it is imported already) and update
    its entry in every description handed out by :func:`describe_device`."""
    if runtime not in BACKEND_MODULES:
        return
    info = probe_runtime(runtime)
    with _lock:
        maps = list(_published.values())
    for runtimes in maps:
        runtimes[runtime] = info  # replaces a value: safe while another thread serialises


def describe_device() -> dict[str, Any]:
    """The ``capabilities`` object of the status message (cheap: imports no runtime)."""
    cores = os.cpu_count()
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:
        physical = None
    free = memory_available()  # the smallest of system, cgroup and RLIMIT_AS: memory.py
    return {
        "cpu": cpu_info(),
        "cores": cores,
        "physical_cores": physical,
        "memory_mb": memory_mb(),
        "memory_available_mb": free.mb,
        "memory_available_source": free.source,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "runtimes": describe_runtimes(),
    }
