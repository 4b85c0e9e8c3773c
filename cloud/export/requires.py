"""A variant's ``requires`` as the exporter knows it: the runtime package it was evaluated
with here (edge/contract/requirements.py reads it on the hub and the device).

``runtime_version`` is the installed version of the runtime package that ran the
evaluation (``edgekit export``) or computed the golden outputs (``edgekit bundle create``):
the oldest version the variant is *known* to work on, so the minimum a device must have.
``arch`` is always null here: ``.tflite``, ``.onnx`` and OpenVINO IR files are
architecture-neutral (the runtime's kernels are built per CPU, the model file is not), and
edgekit exports nothing compiled for one CPU (an OpenVINO compiled blob, a delegate-bound
model); a bundle that carries such a file states its ``arch`` itself.
``memory_mb`` comes from cloud/export/memory.py and is kept when present.
"""

from __future__ import annotations

from typing import Any

from edge.contract import REQUIRES_KEY, parse_version
from edge.runtime import installed_runtime


def runtime_requirements(runtime: str) -> dict[str, Any]:
    """``{"runtime_version", "runtime_package", "arch": None}`` for ``runtime`` as installed
    in this process; without the version (unknown, or not installed) only ``arch``."""
    info = installed_runtime(runtime)
    version, package = info.get("version"), info.get("package")
    out: dict[str, Any] = {}
    if info.get("available") and isinstance(version, str) and parse_version(version) is not None:
        out["runtime_version"] = version
        if isinstance(package, str) and package:
            out["runtime_package"] = package
    out["arch"] = None
    return out


def with_requirements(metrics: dict[str, Any], runtime: str) -> dict[str, Any]:
    """``metrics`` with ``requires`` holding this machine's runtime version and ``arch``;
    any other requirement already there (``memory_mb``) is kept."""
    current = metrics.get(REQUIRES_KEY)
    base = dict(current) if isinstance(current, dict) else {}
    return {**metrics, REQUIRES_KEY: {**base, **runtime_requirements(runtime)}}
