"""The Backend protocol and the registry of runtimes, keyed by runtime name.

One module per runtime (litert.py, onnxruntime.py, openvino.py). Each imports its runtime
package inside ``load`` so a missing runtime is reported (RuntimeMissingError), never fatal.
Backends take and return *model-domain float32* arrays: int8 variants quantise inputs and
dequantise outputs themselves with the scale/zero-point of their TensorSpecs.
"""

from __future__ import annotations

import importlib
import logging
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge.contract import RUNTIMES, Artifact
from edge.errors import BackendError, RuntimeMissingError

log = logging.getLogger(__name__)

# The backend module of each runtime the contract names: edge/runtime/backends/<runtime>.py.
BACKEND_MODULES = {runtime: f"{__package__}.{runtime}" for runtime in RUNTIMES}


@dataclass(frozen=True)
class RuntimeInfo:
    """What edgekit knows about a runtime, declared once, as ``INFO`` in its backend module.

    ``packages``: (importable module, its pip distributions) in the order the backend tries
    them; the first distribution is the one to install. ``extra``: edgekit's pip extra.
    """

    name: str
    title: str
    suffix: str
    packages: tuple[tuple[str, tuple[str, ...]], ...]
    extra: str
    # (architecture, the pip package PyPI has a Linux CPython 3.11 wheel of there), for the
    # architectures of WHEEL_ARCHES; one missing has none (verified: docs/runtimes.md).
    wheels: tuple[tuple[str, str], ...] = ()

    @property
    def install_hint(self) -> str:
        """How to install it on this machine (or why pip cannot)."""
        return self.install_hint_for()

    def no_wheel(self, machine: str | None = None, system: str = sys.platform) -> str | None:
        """Why pip cannot install the runtime on ``machine`` (default: this one), or None."""
        arch = wheel_arch(machine)
        if not system.startswith("linux") or arch not in WHEEL_ARCHES:
            return None  # no claim: only Linux on these architectures was checked
        pip_name, there = self.packages[0][1][0], dict(self.wheels).get(arch)
        if there is None:
            return f"{pip_name} has no wheel for {arch} on PyPI; see docs/runtimes.md"
        if there != pip_name:
            return (f"{pip_name} has no wheel for {arch} on PyPI; {there} has one: "
                    f"pip install {there} (see docs/runtimes.md)")  # fmt: skip
        return None

    def install_hint_for(self, machine: str | None = None, system: str = sys.platform) -> str:
        pip_name = self.packages[0][1][0]
        return self.no_wheel(machine, system) or (
            f"install it with: pip install {pip_name}  (or: pip install 'edgekit[{self.extra}]')"
        )


# Architectures whose wheels docs/runtimes.md lists, as pip's platform tags name them.
WHEEL_ARCHES = ("x86_64", "aarch64", "armv7l")
_ARCH_NAMES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8l": "armv7l"}


def wheel_arch(machine: str | None = None) -> str:
    """The architecture pip picks wheels for: ``platform.machine()``, except that a 32-bit
    Python on a 64-bit Arm kernel (32-bit Raspberry Pi OS on a Pi 4/5) is ``armv7l``."""
    if machine is None:
        machine = platform.machine()
        if machine.lower() in ("aarch64", "arm64") and sys.maxsize < 2**32:
            return "armv7l"
    return _ARCH_NAMES.get(machine.lower(), machine.lower())


def runtime_info(runtime: str) -> RuntimeInfo:
    """The runtime's declared facts (imports only its backend module, never the runtime)."""
    if runtime not in BACKEND_MODULES:
        raise BackendError(f"unknown runtime {runtime!r} (one of {', '.join(RUNTIMES)})")
    info: RuntimeInfo = importlib.import_module(BACKEND_MODULES[runtime]).INFO
    return info


class Backend(Protocol):
    """A loaded model on one runtime."""

    runtime: str

    def load(self, model_path: Path, artifact: Artifact) -> None:
        """Load the artifact's model file (companions lie beside it)."""

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Run a float32 batch ``x`` (batch first) and return float32 scores, batch first."""
        ...

    def cancel(self) -> bool:
        """Ask the inference running now to stop; called from another thread (the serving
        watchdog, when the time limit passed). The interrupted ``infer`` raises. False when
        the runtime cannot interrupt a run (LiteRT): the call then ends on its own."""
        ...

    def describe(self) -> dict[str, Any]:
        """Runtime name, version, device and threads, for status and telemetry."""
        ...

    def close(self) -> None:
        """Release the model."""


def create(runtime: str, **options: Any) -> Backend:
    """A new, unloaded backend for ``runtime``; RuntimeMissingError if not installed."""
    if runtime not in BACKEND_MODULES:
        raise BackendError(f"unknown runtime {runtime!r} (one of {', '.join(RUNTIMES)})")
    module = importlib.import_module(BACKEND_MODULES[runtime])
    backend: Backend = module.create(**options)
    return backend


def available() -> dict[str, dict[str, Any]]:
    """Which runtimes can be used here: ``{runtime: {"available": bool, ...}}``."""
    out: dict[str, dict[str, Any]] = {}
    for runtime, mod_name in BACKEND_MODULES.items():
        try:
            module = importlib.import_module(mod_name)
            out[runtime] = module.probe()
        except RuntimeMissingError as exc:
            out[runtime] = {"available": False, "reason": str(exc)}
        except Exception as exc:  # a broken runtime install is reported, never fatal
            log.warning("runtime %s unusable: %s", runtime, exc)
            out[runtime] = {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
    return out
