"""Inference KPIs for telemetry: counts, errors, latency percentiles, confidence, class mix,
drift against the bundle's reference, live accuracy, CPU and memory.

:meth:`Monitor.snapshot` returns exactly the ``Telemetry.metrics`` keys of the wire contract
(docs/mqtt-api.md, docs/schemas/telemetry.schema.json) and starts a new interval; totals,
drift windows and accuracy windows carry over.

Latency percentiles come from a fixed histogram with log-spaced buckets (growth factor
``LATENCY_GROWTH`` from ``LATENCY_MIN_MS`` to ``LATENCY_MAX_MS``), so memory is constant.
A percentile is reported as the geometric middle of the bucket holding the nearest-rank
sample, clamped to the interval's min and max: inside the range its relative error is at
most ``sqrt(LATENCY_GROWTH) - 1`` (about 4.9 %); see :data:`LATENCY_REL_ERROR`.

Drift (edge/serving/drift_watch.py): PSI of the last ``window`` inputs per feature/channel
(their mean, and the top features by name), of the predicted-class mix and of the top-1
confidence, each against reference.json; ``alert`` when the mean, output or confidence PSI
exceeds ``psi_threshold`` (0.2 = significant by standard PSI practice) or the worst feature
exceeds ``feature_threshold``. Scores are computed at snapshot time, not per inference.
Live accuracy is over the last ``window`` predictions that came with a true label.
The same latencies are also counted in the contract's few fixed Prometheus bounds
(``LATENCY_BUCKETS_S``, edge/contract/histogram.py): per interval for telemetry's
``latency_histogram`` (the hub merges them across devices) and since start for the agent's
``/metrics``.
Input guard (edge/runtime/guard.py): inputs with a feature outside its training range in
the interval, and the most often flagged features by name (``input_guard``).
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from edge.contract import LATENCY_BUCKETS_S, LatencyBuckets
from edge.serving.drift import InputDrift
from edge.serving.drift_watch import (
    DEFAULT_FEATURE_THRESHOLD,
    DEFAULT_THRESHOLD,
    DriftWatch,
    check_threshold,
    empty_block,
)
from edge.serving.latency import (
    LATENCY_GROWTH,
    LATENCY_MAX_MS,
    LATENCY_MIN_MS,
    LATENCY_REL_ERROR,
    LatencyHistogram,
    latency_edges,
)

MAX_GUARD_FEATURES = 10  # features named per telemetry interval in input_guard
__all__ = [
    "LATENCY_GROWTH",
    "LATENCY_MAX_MS",
    "LATENCY_MIN_MS",
    "LATENCY_REL_ERROR",
    "LatencyHistogram",
    "Monitor",
    "latency_edges",
]
_LE_MS = [b * 1000.0 for b in LATENCY_BUCKETS_S]  # the contract's bounds, in record()'s unit
_ERROR = -1.0  # a failed inference in Monitor._recent (latencies are never negative)
PENDING_RECORDS = 64  # inferences queued before they are counted (see Monitor.record_scores)


def _process_probe() -> Callable[[], tuple[float | None, float | None]]:
    """CPU % (since the previous call) and RSS MiB of this process; Nones without psutil."""
    try:
        import psutil
    except ImportError:
        return lambda: (None, None)
    proc = psutil.Process()
    proc.cpu_percent(None)  # the first call only sets the baseline

    def probe() -> tuple[float | None, float | None]:
        try:
            return float(proc.cpu_percent(None)), proc.memory_info().rss / (1 << 20)
        except psutil.Error:
            return None, None

    return probe


class Monitor:
    """Collects what the agent observes; thread-safe (inference and telemetry threads)."""

    def __init__(
        self,
        labels: list[str],
        reference: dict[str, Any] | None = None,
        psi_threshold: float = DEFAULT_THRESHOLD,
        latency_buckets: np.ndarray | None = None,
        *,
        window: int = 1000,
        min_drift_samples: int = 200,
        feature_threshold: float = DEFAULT_FEATURE_THRESHOLD,
        output_step: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not labels:
            raise ValueError("Monitor needs the model's labels")
        self.labels = list(labels)
        self.psi_threshold = check_threshold(psi_threshold, "psi_threshold")
        self.feature_threshold = check_threshold(feature_threshold, "feature_threshold")
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._latency = LatencyHistogram(latency_buckets)
        self._drift: DriftWatch | None = None
        self._input_drift: InputDrift | None = None
        if reference is not None:
            self._drift = DriftWatch(
                reference, self.labels, window, min_drift_samples,
                threshold=self.psi_threshold, feature_threshold=self.feature_threshold,
                output_step=output_step,
            )  # fmt: skip
            self._input_drift = self._drift.inputs
        self._correct: deque[bool] = deque(maxlen=window)
        # latency (ms) of each recent inference, _ERROR for a failed one: no tuple per call
        self._recent: deque[float] = deque(maxlen=max(window, 10_000))
        self._probe = _process_probe()
        self.started = self._clock()
        self.inferences_total = 0
        self.errors_total = 0
        self.rejected_total: dict[str, int] = {}
        self.errors_by_kind: dict[str, int] = {}
        self._le_total = [0] * (len(_LE_MS) + 1)
        self._le_total_ms = 0.0
        # (latency ms, top index, its score, true label) of inferences not counted yet
        self._pending: list[tuple[float, int, float, str | int | None]] = []
        self._reset_interval(self.started)

    # -- recording -----------------------------------------------------------------------

    def record(
        self,
        latency_ms: float,
        scores: np.ndarray,
        model_input: np.ndarray | None = None,
        true_label: str | int | None = None,
    ) -> None:
        """One successful inference: its latency, its scores (probabilities over labels),
        optionally the model-domain input (for drift) and the true label (for accuracy)."""
        s = scores if isinstance(scores, np.ndarray) else np.asarray(scores, dtype=np.float64)
        row = s.ravel().tolist()
        if len(row) != len(self.labels) or not all(map(math.isfinite, row)):
            self.record_error("bad_output")
            return
        if model_input is not None:
            self.record_input(model_input)
        self.record_scores(latency_ms, row, max(range(len(row)), key=row.__getitem__), true_label)

    def record_input(self, model_input: np.ndarray) -> None:
        """A model-domain input about to be run (input drift). Serving calls this right
        after preparing it, while it is still in the CPU caches."""
        drift = self._input_drift
        if drift is not None:
            with self._lock:
                drift.add(model_input)

    def record_scores(
        self, latency_ms: float, row: list[float], pred: int, true_label: str | int | None = None
    ) -> None:
        """One successful inference whose score row (finite, one per label: checked by the
        caller) and top index ``pred`` are known. Called right after the model ran, when
        the CPU caches are cold and every line costs several times its warm price: so it
        is only queued here, and counted ``PENDING_RECORDS`` at a time (warm), or when
        anything reads the monitor (:meth:`_flush`)."""
        if len(row) != len(self.labels):
            self.record_error("bad_output")
            return
        with self._lock:
            pending = self._pending
            pending.append((latency_ms, pred, row[pred], true_label))
            if len(pending) >= PENDING_RECORDS:
                self._flush()

    def _flush(self) -> None:
        """Count the queued inferences (the caller holds the lock)."""
        pending, self._pending = self._pending, []
        latency, le_counts, le_total, classes = (
            self._latency, self._le_counts, self._le_total, self._class_counts
        )  # fmt: skip
        recent, drift, inf = self._recent, self._drift, math.inf
        for latency_ms, pred, confidence, true_label in pending:
            ms = float(latency_ms)
            if not 0.0 < ms < inf:  # negative, NaN or infinite: counted as 0
                ms = 0.0
            latency.add(ms)
            i = bisect.bisect_left(_LE_MS, ms)
            le_counts[i] += 1
            le_total[i] += 1
            self._le_total_ms += ms
            self._confidence_sum += float(confidence)
            classes[pred] += 1
            recent.append(ms)
            if drift is not None:
                drift.add_prediction(pred, float(confidence))
            if true_label is not None:
                truth = self._label_of(true_label)
                if truth is not None:
                    self._correct.append(truth == self.labels[pred])
        self.inferences_total += len(pending)
        self._inferences += len(pending)

    def record_error(self, kind: str) -> None:
        """A failed inference (timeout, backend error, ...), counted by ``kind``."""
        with self._lock:
            self._flush()  # in order: the recent outcomes are a sequence
            self.errors_total += 1
            self._errors[kind] = self._errors.get(kind, 0) + 1
            self.errors_by_kind[kind] = self.errors_by_kind.get(kind, 0) + 1
            self._recent.append(_ERROR)

    def record_rejection(self, code: str) -> None:
        """An input refused before inference (InputError.code); not a model error."""
        with self._lock:
            self._rejected[code] = self._rejected.get(code, 0) + 1
            self.rejected_total[code] = self.rejected_total.get(code, 0) + 1

    def record_out_of_range(self, features: Sequence[str]) -> None:
        """An input with ``features`` outside their training range (edge/runtime/guard.py),
        served (guard ``warn``) or refused (``refuse``, also a ``range`` rejection)."""
        with self._lock:
            self._out_of_range += 1
            counts = self._guard_features
            for name in features:
                counts[name] = counts.get(name, 0) + 1

    # -- queries -------------------------------------------------------------------------

    def recent_outcomes(self, window: int) -> tuple[int, int]:
        """``(attempts, errors)`` over the last ``window`` inferences and errors."""
        with self._lock:
            self._flush()
            items = list(self._recent)[-window:] if window > 0 else []
        return len(items), sum(1 for ms in items if ms == _ERROR)

    def error_rate_recent(self, window: int) -> float:
        """Share of errors among the last ``window`` attempts (0.0 when there were none)."""
        n, errors = self.recent_outcomes(window)
        return errors / n if n else 0.0

    def latency_recent(self, window: int, q: float = 95.0) -> float | None:
        """Exact percentile of the last ``window`` successful latencies (for probation)."""
        with self._lock:
            self._flush()
            values = [ms for ms in list(self._recent)[-window:] if ms != _ERROR]
        return float(np.percentile(values, q)) if values else None

    def set_drift_thresholds(self, threshold: float, feature_threshold: float) -> None:
        """New alert thresholds (a ``config`` command); ValueError for a bad one."""
        threshold = check_threshold(threshold, "psi_threshold")
        feature_threshold = check_threshold(feature_threshold, "feature_threshold")
        with self._lock:
            self.psi_threshold, self.feature_threshold = threshold, feature_threshold
            if self._drift is not None:
                self._drift.set_thresholds(threshold, feature_threshold)

    def inherit_totals(self, previous: Monitor) -> None:
        """Carry the run's start and totals over from the monitor this one replaces (a
        new model), so counters never go back while the agent runs."""
        with previous._lock:
            previous._flush()
            self.started = previous.started
            self.inferences_total = previous.inferences_total
            self.errors_total = previous.errors_total
            self.errors_by_kind = dict(previous.errors_by_kind)
            self.rejected_total = dict(previous.rejected_total)
            self._le_total = list(previous._le_total)
            self._le_total_ms = previous._le_total_ms

    def totals(self) -> dict[str, Any]:
        """Counters since the agent started (the agent's ``/metrics``): uptime, inferences,
        errors and rejected inputs by kind, and the latency histogram in seconds."""
        now = self._clock()
        with self._lock:
            self._flush()
            return {
                "uptime_s": max(0.0, now - self.started),
                "inferences": self.inferences_total,
                "errors": dict(self.errors_by_kind),
                "rejected": dict(self.rejected_total),
                "latency": LatencyBuckets(
                    LATENCY_BUCKETS_S, tuple(self._le_total), self._le_total_ms / 1e3
                ),
            }

    def drift_detail(self) -> dict[str, Any]:
        """PSI of every feature/channel by name (diagnostics; telemetry carries the top
        ones)."""
        drift = self._drift
        with self._lock:
            return {
                "granularity": drift.inputs.granularity if drift else None,
                "names": list(drift.names) if drift else [],
                "input_psi": drift.inputs.per_dimension() if drift else [],
                "input_mismatches": drift.inputs.mismatches if drift else 0,
            }

    def snapshot(
        self, now: float | None = None, outbox: dict[str, int] | None = None
    ) -> dict[str, Any]:
        """The telemetry metrics of the interval since the previous snapshot, then reset.
        ``now`` is on the monitor's clock (monotonic by default)."""
        now = self._clock() if now is None else now
        cpu, rss = self._probe()
        with self._lock:
            self._flush()
            interval = max(now - self._interval_start, 1e-9)
            n, errs = self._inferences, sum(self._errors.values())
            drift = (
                self._drift.block()
                if self._drift is not None
                else empty_block(self.psi_threshold, self.feature_threshold)
            )
            metrics: dict[str, Any] = {
                "interval_s": round(interval, 3),
                "uptime_s": round(now - self.started, 3),
                "inferences": n,
                "inferences_total": self.inferences_total,
                "errors": dict(self._errors),
                "error_rate": errs / (n + errs) if n + errs else 0.0,
                "rejected_inputs": dict(self._rejected),
                "input_guard": self._guard_block(),
                "latency_ms": self._latency.summary(),
                "latency_histogram": LatencyBuckets(
                    LATENCY_BUCKETS_S, tuple(self._le_counts), round(self._latency.total / 1e3, 9)
                ).to_dict(),
                "throughput_per_s": n / interval,
                "confidence_mean": self._confidence_sum / n if n else None,
                "class_mix": {
                    label: int(c) / n
                    for label, c in zip(self.labels, self._class_counts, strict=True)
                }
                if n
                else {},
                "drift": drift,
                "accuracy": {
                    "value": sum(self._correct) / len(self._correct),
                    "n": len(self._correct),
                }
                if self._correct
                else None,
                "cpu_percent": cpu,
                "memory_rss_mb": None if rss is None else round(rss, 2),
                "outbox": None
                if outbox is None
                else {
                    "queued": int(outbox.get("queued", 0)),
                    "dropped": int(outbox.get("dropped", 0)),
                },
            }
            self._reset_interval(now)
        return metrics

    # -- internals -----------------------------------------------------------------------

    def _reset_interval(self, now: float) -> None:
        self._interval_start = now
        self._inferences = 0
        self._errors: dict[str, int] = {}
        self._rejected: dict[str, int] = {}
        self._out_of_range = 0
        self._guard_features: dict[str, int] = {}  # keys: the model's feature names
        self._latency.reset()
        self._le_counts = [0] * (len(_LE_MS) + 1)
        self._confidence_sum = 0.0
        self._class_counts = [0] * len(self.labels)

    def _guard_block(self) -> dict[str, Any]:
        """The interval's ``input_guard`` telemetry: inputs out of range, and the
        ``MAX_GUARD_FEATURES`` most often flagged features by name (bounded size)."""
        ranked = sorted(self._guard_features.items(), key=lambda kv: (-kv[1], kv[0]))
        return {
            "out_of_range": self._out_of_range,
            "features": dict(ranked[:MAX_GUARD_FEATURES]),
            "more_features": max(0, len(ranked) - MAX_GUARD_FEATURES),
        }

    def _label_of(self, true_label: str | int | None) -> str | None:
        if true_label is None or isinstance(true_label, bool):
            return None
        if isinstance(true_label, (int, np.integer)):
            i = int(true_label)
            return self.labels[i] if 0 <= i < len(self.labels) else None
        return str(true_label)
