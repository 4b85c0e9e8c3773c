"""What this device is: CPU model and the instruction-set flags that matter for inference,
cores, memory and the inference runtimes installed. Published in the retained status so the
hub can show it and match rollouts to hardware."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

from edge.backends.base import available

# Flags that change which kernels a runtime can use (x86 SIMD / VNNI / AMX, Arm NEON / dot).
INTERESTING_FLAGS = (
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
    "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16",
    "neon", "asimd", "asimddp", "fphp", "asimdhp", "sve", "sve2", "i8mm", "bf16",
)  # fmt: skip


def cpu_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, Any]:
    """CPU model name and the interesting flags (Linux /proc/cpuinfo; else platform)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and value.strip():
            model = value.strip()
        elif key in ("flags", "features"):
            flags.update(value.split())
    return {
        "model": model,
        "arch": platform.machine(),
        "flags": sorted(f for f in flags if f in INTERESTING_FLAGS),
    }


def memory_mb() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**20, 1)
    except Exception:
        try:
            return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20, 1)
        except (ValueError, OSError, AttributeError):
            return None


def describe_device() -> dict[str, Any]:
    """The ``capabilities`` object of the status message."""
    cores = os.cpu_count()
    try:
        import psutil

        physical = psutil.cpu_count(logical=False)
    except Exception:
        physical = None
    return {
        "cpu": cpu_info(),
        "cores": cores,
        "physical_cores": physical,
        "memory_mb": memory_mb(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "runtimes": available(),
    }
