"""Latency percentiles in constant memory: a fixed histogram with log-spaced buckets
(growth factor ``LATENCY_GROWTH`` from ``LATENCY_MIN_MS`` to ``LATENCY_MAX_MS``). A
percentile is reported as the geometric middle of the bucket holding the nearest-rank
sample, clamped to the interval's min and max: inside the range its relative error is at
most ``sqrt(LATENCY_GROWTH) - 1`` (about 4.9 %); see :data:`LATENCY_REL_ERROR`.
"""

from __future__ import annotations

import bisect
import math

import numpy as np

LATENCY_MIN_MS = 0.01
LATENCY_MAX_MS = 120_000.0
LATENCY_GROWTH = 1.1
LATENCY_REL_ERROR = math.sqrt(LATENCY_GROWTH) - 1


def latency_edges(
    lo: float = LATENCY_MIN_MS, hi: float = LATENCY_MAX_MS, growth: float = LATENCY_GROWTH
) -> np.ndarray:
    """Log-spaced bucket edges: ``lo * growth**i`` up to at least ``hi``."""
    n = math.ceil(math.log(hi / lo) / math.log(growth))
    return lo * growth ** np.arange(n + 1)


class LatencyHistogram:
    """Constant-memory latency distribution with bounded-relative-error percentiles."""

    def __init__(self, edges: np.ndarray | None = None) -> None:
        self.edges = latency_edges() if edges is None else np.asarray(edges, dtype=np.float64)
        if self.edges.ndim != 1 or len(self.edges) < 2 or np.any(np.diff(self.edges) <= 0):
            raise ValueError("latency bucket edges must be strictly increasing")
        # bucket 0: below edges[0]; bucket i: [edges[i-1], edges[i]); last: >= edges[-1]
        self.counts: list[int] = []
        self._edge_list = self.edges.tolist()  # add() bisects a list: no numpy call
        self.reset()

    def reset(self) -> None:
        self.counts = [0] * (len(self._edge_list) + 1)  # a list: add() makes no numpy call
        self.n = 0
        self.total = 0.0
        self.min = math.inf
        self.max = -math.inf

    def add(self, ms: float) -> None:
        self.counts[bisect.bisect_right(self._edge_list, ms)] += 1
        self.n += 1
        self.total += ms
        if ms < self.min:
            self.min = ms
        if ms > self.max:
            self.max = ms

    def percentile(self, q: float) -> float | None:
        """Nearest-rank percentile estimate (q in 0..100), None when empty."""
        if self.n == 0:
            return None
        rank = max(1, math.ceil(q / 100.0 * self.n))
        bucket = int(np.searchsorted(np.cumsum(self.counts), rank))
        if bucket == 0:
            estimate = self.min
        elif bucket >= len(self.edges):
            estimate = self.max
        else:
            estimate = math.sqrt(self.edges[bucket - 1] * self.edges[bucket])
        return float(min(max(estimate, self.min), self.max))

    def summary(self) -> dict[str, float | None]:
        empty = self.n == 0
        return {
            "p50": self.percentile(50),
            "p95": self.percentile(95),
            "p99": self.percentile(99),
            "mean": None if empty else self.total / self.n,
            "max": None if empty else self.max,
        }
