"""The memory one model variant uses when loaded and running, measured in this process.

Run as ``python -m edge.runtime.footprint MODEL ARTIFACT.json INPUTS.npy [--runs N]`` in a
fresh process (the exporter does, per variant: cloud/export/memory.py), so nothing else
(TensorFlow in the exporter, another runtime) is counted. Prints one JSON object.

What is counted: ``before`` is VmRSS once Python, numpy and edgekit's edge package are
imported and the inputs are read; the peak (VmHWM) is then reset to it, the variant's
runtime is imported, the model loaded and ``runs`` single-sample inferences made on the
inputs. ``memory_mb`` = VmHWM - before: the peak resident growth, the runtime's own import
included, since an agent that serves this variant pays for it. ``steady_mb`` is the RSS
growth once the runs are done; ``virtual_mb`` the address-space (VmSize) growth, which is
what an RLIMIT_AS limit counts. Linux only (/proc); elsewhere the numbers are null.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import Artifact
from edge.runtime.backends.base import create
from edge.runtime.memory import MIB, proc_status, reset_peak_rss

DEFAULT_RUNS = 5


def _mb(n: int | None) -> float | None:
    return None if n is None else round(n / MIB, 1)


def _growth(now: int | None, base: int | None) -> int | None:
    return None if now is None or base is None else max(0, now - base)


def measure(model: Path, artifact: Artifact, inputs: np.ndarray, runs: int) -> dict[str, Any]:
    """Load ``artifact`` from ``model``, run it ``runs`` times; memory before, peak, after."""
    if runs < 1:
        raise ValueError("runs must be at least 1")
    if inputs.ndim < 1 or len(inputs) == 0:
        raise ValueError("no inputs to run the model on")
    x = np.asarray(inputs, dtype=np.float32)
    gc.collect()
    before = proc_status()
    peak_reset = reset_peak_rss()
    t0 = time.perf_counter()
    backend = create(artifact.runtime)
    backend.load(model, artifact)
    load_s = time.perf_counter() - t0
    try:
        for i in range(runs):
            backend.infer(x[i % len(x) : i % len(x) + 1])
        after = proc_status()
    finally:
        backend.close()
    rss0, vm0 = before.get("VmRSS"), before.get("VmSize")
    rss1, hwm, vm1 = after.get("VmRSS"), after.get("VmHWM"), after.get("VmPeak")
    return {
        "runtime": artifact.runtime,
        "target": artifact.target,
        "runs": runs,
        "load_s": round(load_s, 3),
        "rss_before_mb": _mb(rss0),
        "rss_after_mb": _mb(rss1),
        "peak_rss_mb": _mb(hwm if peak_reset else None),
        "memory_mb": _mb(_growth(hwm, rss0) if peak_reset else _growth(rss1, rss0)),
        "steady_mb": _mb(_growth(rss1, rss0)),
        "virtual_mb": _mb(_growth(vm1, vm0)),
        "peak_is": "VmHWM" if peak_reset else "VmRSS after the runs (peak not resettable)",
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edge.runtime.footprint", description=__doc__)
    p.add_argument("model", type=Path)
    p.add_argument("artifact", type=Path, help="the variant's manifest entry, as JSON")
    p.add_argument("inputs", type=Path, help="model-domain float32 inputs, .npy, batch first")
    p.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    args = p.parse_args(argv)
    try:
        artifact = Artifact.parse(json.loads(args.artifact.read_text()), str(args.artifact))
        inputs = np.load(args.inputs, allow_pickle=False)
        result = measure(args.model, artifact, inputs, args.runs)
    except Exception as exc:  # one line the parent can show, never a traceback
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
