"""Measure a variant with the same edge backend a device runs it with.

Every test sample goes through ``Backend.infer`` one at a time (batch 1, like a device
serving requests), so the accuracy and the latency distribution come from the very same
calls: accuracy and top-1 agreement with the float Keras model over the whole test split,
median and p95 latency after a short warm-up. Int8 variants quantise/dequantise inside
the backend, so their latency includes that work, exactly as on the device.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from cloud.export.variants import Variant
from edge.backends.base import Backend, create
from edge.contract import Artifact

WARMUP_CALLS = 5


@contextmanager
def loaded_backend(variant: Variant, root: Path) -> Iterator[Backend]:
    """The variant's model loaded in its runtime's edge backend; closed on exit."""
    artifact: Artifact = variant.artifact(root)
    backend = create(variant.runtime)
    try:
        backend.load(root / artifact.file, artifact)
        yield backend
    finally:
        backend.close()


def infer_each(backend: Backend, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores for every sample, run one by one; also the per-call latencies in ms."""
    for _ in range(min(WARMUP_CALLS, len(x))):
        backend.infer(x[:1])
    scores: list[np.ndarray] = []
    latencies = np.empty(len(x), dtype=np.float64)
    for i in range(len(x)):
        start = time.perf_counter()
        out = backend.infer(x[i : i + 1])
        latencies[i] = (time.perf_counter() - start) * 1000.0
        scores.append(np.asarray(out, dtype=np.float32).reshape(1, -1))
    return np.concatenate(scores, axis=0), latencies


def measure(
    backend: Backend, x: np.ndarray, y: np.ndarray, float_pred: np.ndarray
) -> tuple[dict[str, Any], np.ndarray]:
    """Accuracy, agreement with the float model and latency percentiles on ``x``."""
    scores, latencies = infer_each(backend, x)
    if scores.shape[0] != len(y):
        raise ValueError(f"backend returned {scores.shape[0]} rows for {len(y)} samples")
    if not np.all(np.isfinite(scores)):
        raise ValueError("backend returned NaN or inf scores")
    pred = scores.argmax(axis=1)
    metrics = {
        "accuracy": round(float(np.mean(pred == y)), 6),
        "agreement": round(float(np.mean(pred == float_pred)), 6),
        "latency_ms": round(float(np.median(latencies)), 4),
        "latency_p95_ms": round(float(np.percentile(latencies, 95)), 4),
    }
    return metrics, scores


def evaluate_variant(
    variant: Variant, root: Path, x: np.ndarray, y: np.ndarray, float_pred: np.ndarray
) -> None:
    """Fill ``variant.metrics`` (and ``scores``, ``backend``) from its real runtime."""
    with loaded_backend(variant, root) as backend:
        metrics, scores = measure(backend, x, y, float_pred)
        variant.backend = dict(backend.describe())
    assert variant.converted is not None
    variant.metrics.update(metrics, size=variant.converted.size)
    variant.scores = scores


def fill_speedups(variants: list[Variant]) -> None:
    """``speedup_vs_fp32`` = fp32 median latency / this median latency, same runtime.

    None when the runtime's fp32 variant was not exported or failed: a speed-up against
    another runtime would compare runtimes, not precisions.
    """
    fp32 = {
        v.runtime: v.metrics["latency_ms"]
        for v in variants
        if v.precision == "fp32" and v.ok and v.metrics.get("latency_ms")
    }
    for v in variants:
        base, own = fp32.get(v.runtime), v.metrics.get("latency_ms")
        v.metrics["speedup_vs_fp32"] = round(base / own, 3) if base and own and v.ok else None
