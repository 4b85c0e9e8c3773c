"""Measure variants with the same edge backends a device runs them with.

Accuracy: every test sample goes through ``Backend.infer`` one at a time (batch 1, like a
device serving requests); accuracy and top-1 agreement with the float Keras model are
computed over the whole test split. Int8 variants quantise/dequantise inside the backend,
exactly as on the device.

Agreement needs no labels, so the gate also measures it on the training and validation
inputs (``AgreementRows``): every row of a tabular set, and for image sets a seeded
subsample so that at most ``MAX_IMAGE_AGREEMENT_ROWS`` rows are run in all (the test rows
always count). Those extra rows go through the backend in batches of ``AGREEMENT_BATCH``:
the answers are the same as at batch 1 (checked in tests/cloud/export/test_evaluate.py)
and 10-16x faster (1797 digits: OpenVINO 0.16 s at batch 1, 0.01 s batched), which matters
for 3000 MobileNet-sized images.

Latency: all variants are loaded together and timed in rotating *blocks* of consecutive
calls (A x25, B x25, ..., A x25, ...), each block after a few untimed warm-up calls. On a
shared or throttling machine, load changes then hit every variant alike, so speed-ups stay
meaningful. Blocks rather than call-by-call interleaving, because runtimes keep their
thread pools spinning briefly after each call: alternating runtimes on every call makes
them fight over the cores, which a device running one model never sees.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cloud.export.variants import Variant
from edge.contract import Artifact
from edge.runtime import Backend, create

WARMUP_CALLS = 5
TIMING_CALLS = 300  # timed calls per variant, at most ...
MIN_TIMING_CALLS = 50  # ... and at least this many, even past the time budget
TIMING_BUDGET_S = 30.0
BLOCK_CALLS = 25  # consecutive calls of one variant before the next one's turn
BLOCK_WARMUP = 3  # untimed calls at the start of each block (caches, thread pools)
MAX_IMAGE_AGREEMENT_ROWS = 3000  # image sets: rows judged for agreement, test rows included
AGREEMENT_BATCH = 64
AGREEMENT_SPLITS = ("train", "val")  # besides the test split, which always comes first


@dataclass(frozen=True)
class AgreementRows:
    """Which non-test rows the gate's agreement is measured on (test rows come first)."""

    test: int
    index: dict[str, np.ndarray]  # split -> sorted row indices into that split
    cap: int | None
    subsampled: bool

    @property
    def total(self) -> int:
        return self.test + sum(len(i) for i in self.index.values())

    def batches(self, x: Mapping[str, np.ndarray], size: int) -> Iterator[np.ndarray]:
        """The chosen train/val inputs in order, ``size`` rows at a time (never all copied:
        a 3000-image subsample at 224x224 would be 1.8 GB)."""
        for split in AGREEMENT_SPLITS:
            idx = self.index[split]
            for start in range(0, len(idx), size):
                yield x[split][idx[start : start + size]]

    def describe(self) -> dict[str, Any]:
        """For report.json's gate block."""
        counts = {s: len(self.index[s]) for s in AGREEMENT_SPLITS}
        extent = {"test": self.test, "total": self.total, "cap": self.cap}
        return {**counts, **extent, "subsampled": self.subsampled}


def agreement_rows(
    x: Mapping[str, np.ndarray], seed: int, cap: int = MAX_IMAGE_AGREEMENT_ROWS
) -> AgreementRows:
    """All train/val rows of a tabular set; a seeded subsample for images (see module doc)."""
    sizes = {s: len(x[s]) for s in AGREEMENT_SPLITS}
    test, pool = len(x["test"]), sum(sizes.values())
    image = x["test"].ndim > 2
    room = max(0, cap - test) if image else pool
    if room >= pool:
        index = {s: np.arange(n) for s, n in sizes.items()}
        return AgreementRows(test, index, cap if image else None, False)
    pooled = np.sort(np.random.default_rng(seed).choice(pool, room, replace=False))
    split_at = sizes[AGREEMENT_SPLITS[0]]
    index = {"train": pooled[pooled < split_at], "val": pooled[pooled >= split_at] - split_at}
    return AgreementRows(test, index, cap, True)


@dataclass(frozen=True)
class ExtraInputs:
    """The agreement inputs beyond the test split and the float model's top-1 on them."""

    rows: AgreementRows
    x: Mapping[str, np.ndarray]  # the run's splits, indexed lazily by ``rows``
    float_pred: np.ndarray

    @classmethod
    def predicted(
        cls,
        rows: AgreementRows,
        x: Mapping[str, np.ndarray],
        predict: Callable[[np.ndarray], np.ndarray],
    ) -> ExtraInputs:
        """Run ``predict`` (the float model) over the rows, a few hundred at a time."""
        preds = [np.asarray(predict(b)).argmax(axis=1) for b in rows.batches(x, 256)]
        pred = np.concatenate(preds) if preds else np.empty(0, dtype=np.int64)
        return cls(rows, x, pred)


def infer_extra(backend: Backend, extra: ExtraInputs, batch: int = AGREEMENT_BATCH) -> np.ndarray:
    """A backend's top-1 on the extra agreement inputs, ``batch`` rows per call."""
    preds: list[np.ndarray] = []
    for part in extra.rows.batches(extra.x, batch):
        scores = np.asarray(backend.infer(part), dtype=np.float32).reshape(len(part), -1)
        if not np.all(np.isfinite(scores)):
            raise ValueError("backend returned NaN or inf scores")
        preds.append(scores.argmax(axis=1))
    pred = np.concatenate(preds) if preds else np.empty(0, dtype=np.int64)
    if len(pred) != len(extra.float_pred):
        raise ValueError(f"backend answered {len(pred)} of {len(extra.float_pred)} inputs")
    return pred


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


def quality(scores: np.ndarray, y: np.ndarray, float_pred: np.ndarray) -> dict[str, float]:
    """Accuracy and top-1 agreement with the float model; refuses malformed scores."""
    if scores.shape[0] != len(y):
        raise ValueError(f"backend returned {scores.shape[0]} rows for {len(y)} samples")
    if not np.all(np.isfinite(scores)):
        raise ValueError("backend returned NaN or inf scores")
    pred = scores.argmax(axis=1)
    return {
        "accuracy": round(float(np.mean(pred == y)), 6),
        "agreement": round(float(np.mean(pred == float_pred)), 6),
    }


def evaluate_variant(
    variant: Variant,
    root: Path,
    x: np.ndarray,
    y: np.ndarray,
    float_pred: np.ndarray,
    extra: ExtraInputs | None = None,
) -> None:
    """Fill accuracy, agreement and size (and ``scores``, ``pred_all``, ``backend``).

    ``extra`` are the unlabelled agreement inputs beyond the test split; without them the
    agreement on all inputs is the test-split agreement.
    """
    with loaded_backend(variant, root) as backend:
        scores, _ = infer_each(backend, x)
        extra_pred = infer_extra(backend, extra) if extra is not None else None
        variant.backend = dict(backend.describe())
    assert variant.converted is not None
    variant.metrics.update(quality(scores, y, float_pred), size=variant.converted.size)
    variant.scores = scores
    pred_all, float_all = scores.argmax(axis=1), float_pred
    if extra is not None and extra_pred is not None:
        pred_all = np.concatenate([pred_all, extra_pred])
        float_all = np.concatenate([float_pred, extra.float_pred])
    variant.pred_all = pred_all
    variant.metrics["agreement_all"] = round(float(np.mean(pred_all == float_all)), 6)
    variant.metrics["agreement_inputs"] = len(pred_all)


def time_variants(
    variants: list[Variant],
    root: Path,
    x: np.ndarray,
    calls: int = TIMING_CALLS,
    budget_s: float = TIMING_BUDGET_S,
) -> None:
    """Median and p95 single-sample latency of each variant, timed in rotating blocks.

    A variant whose backend fails here is marked failed (step ``time``); the others go on.
    """
    with ExitStack() as stack:
        live: list[tuple[Variant, Backend]] = []
        for v in variants:
            try:
                live.append((v, stack.enter_context(loaded_backend(v, root))))
            except Exception as exc:
                v.fail("time", exc)
        timed: dict[int, list[float]] = {id(v): [] for v, _ in live}  # targets may repeat
        start, i = time.perf_counter(), 0
        while live:
            for v, backend in list(live):
                try:
                    timed[id(v)] += _block(backend, x, i)
                except Exception as exc:
                    v.fail("time", exc)
                    live = [(w, b) for w, b in live if w is not v]
            i += BLOCK_CALLS
            elapsed = time.perf_counter() - start
            if i >= calls or (i >= MIN_TIMING_CALLS and elapsed > budget_s):
                break
    for v in variants:
        samples = timed.get(id(v))
        if v.ok and samples:
            v.metrics["latency_ms"] = round(float(np.median(samples)), 4)
            v.metrics["latency_p95_ms"] = round(float(np.percentile(samples, 95)), 4)
            v.metrics["timed_calls"] = len(samples)


def _block(backend: Backend, x: np.ndarray, offset: int) -> list[float]:
    """One block of consecutive timed calls, after warm-up calls that are not counted."""
    for _ in range(BLOCK_WARMUP):
        backend.infer(x[offset % len(x) : offset % len(x) + 1])
    out: list[float] = []
    for k in range(offset, offset + BLOCK_CALLS):
        sample = x[k % len(x) : k % len(x) + 1]
        t0 = time.perf_counter()
        backend.infer(sample)
        out.append((time.perf_counter() - t0) * 1000.0)
    return out


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


def describe_timing(variants: list[Variant]) -> dict[str, Any]:
    """How latency was measured, for report.json."""
    return {
        "method": "single-sample calls through the edge backends, in rotating blocks",
        "block_calls": BLOCK_CALLS,
        "block_warmup_calls": BLOCK_WARMUP,
        "calls_per_variant": {v.target: v.metrics.get("timed_calls") for v in variants},
    }
