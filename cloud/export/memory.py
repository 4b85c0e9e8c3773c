"""Measure at export the memory each variant uses when loaded and running.

One fresh Python process per variant (``python -m edge.runtime.footprint``, same
interpreter, same ``edge`` package as this process), so neither TensorFlow in the exporter
nor another variant's runtime is counted. The child loads the variant with the edge backend
a device uses and runs a few single-sample inferences on the golden inputs; what it counts
is in edge/runtime/footprint.py (``memory_mb`` = peak resident growth over Python + numpy +
edgekit, the runtime's import included). The number becomes ``requires.memory_mb`` of the
variant in the manifest; the full measurement goes to the variant's row in report.json.

A failed measurement never fails the export: the variant then states no memory need (the
device checks only its runtime), and the row says why. Cost: about 0.5-1.5 s per variant
(process start, numpy and runtime import, model load).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import edge
from cloud.export.variants import Variant
from edge.contract import REQUIRES_KEY, Artifact

MEASURE_RUNS = 5
MEASURE_INPUTS = 8  # golden rows handed to the child (it cycles through them)
TIMEOUT_S = 300.0


def measure_variant_memory(
    model: Path,
    artifact: Artifact,
    inputs: np.ndarray,
    *,
    runs: int = MEASURE_RUNS,
    timeout: float = TIMEOUT_S,
    python: str = sys.executable,
) -> dict[str, Any]:
    """The child's measurement (see module doc) plus ``seconds``; ``error`` when it failed."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgekit-memory-") as tmp:
        spec, data = Path(tmp) / "artifact.json", Path(tmp) / "inputs.npy"
        spec.write_text(json.dumps(artifact.to_dict()), encoding="utf-8")
        np.save(data, np.ascontiguousarray(inputs[:MEASURE_INPUTS], dtype=np.float32))
        pkg_root = str(Path(edge.__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (pkg_root, os.environ.get("PYTHONPATH")) if p
        )}  # fmt: skip
        cmd = [python, "-m", "edge.runtime.footprint", str(model), str(spec), str(data)]
        try:
            proc = subprocess.run(
                [*cmd, "--runs", str(runs)],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=env,
                cwd=tmp,
            )
        except subprocess.TimeoutExpired:
            return _failed(f"no answer within {timeout:g} s", start)
        except OSError as exc:
            return _failed(f"cannot start {python}: {exc}", start)
    result = _parse(proc.stdout)
    if result is None:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return _failed(f"exit {proc.returncode}: {tail[0][:300]}", start)
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def _parse(stdout: str) -> dict[str, Any] | None:
    """The child's JSON line (the last line that is a JSON object), else None."""
    for line in reversed(stdout.strip().splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _failed(reason: str, start: float) -> dict[str, Any]:
    return {"error": reason, "seconds": round(time.perf_counter() - start, 2)}


def required_mb(measured: dict[str, Any]) -> float | None:
    """``requires.memory_mb`` from a measurement: its ``memory_mb``, or None when failed."""
    value = measured.get("memory_mb")
    if measured.get("error") or not isinstance(value, (int, float)) or value < 0:
        return None
    return round(float(value), 1)


def measure_survivors(
    variants: list[Variant], root: Path, inputs: np.ndarray, progress: Callable[[str], None]
) -> float:
    """Measure every variant in turn (``variant.memory``, ``seconds["memory"]``); the total
    seconds spent. One at a time: two children at once would share the CPU, not the memory,
    but would make the export's timing noisier."""
    start = time.perf_counter()
    for v in variants:
        if v.converted is None:
            continue
        v.memory = measure_variant_memory(v.converted.path, v.artifact(root), inputs)
        v.seconds["memory"] = v.memory["seconds"]
        if v.memory.get("error"):
            progress(f"      {v.target}: memory not measured: {v.memory['error']}")
        else:
            progress(
                f"      {v.target}: {v.memory['memory_mb']} MB resident growth "
                f"(steady {v.memory['steady_mb']}, address space +{v.memory['virtual_mb']}) "
                f"in {v.memory['seconds']} s"
            )
    return time.perf_counter() - start


def with_memory(metrics: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` with ``requires.memory_mb`` set from ``measured`` (the other requirements,
    written by the exporter elsewhere, are kept); unchanged when nothing was measured."""
    need = required_mb(measured)
    if need is None:
        return metrics
    requires = metrics.get(REQUIRES_KEY)
    base = dict(requires) if isinstance(requires, dict) else {"runtime_version": None, "arch": None}
    return {**metrics, REQUIRES_KEY: {**base, "memory_mb": need}}
