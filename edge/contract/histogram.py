"""The latency histogram carried in telemetry (``latency_histogram``): fixed bucket bounds.

The agent's own :class:`edge.serving.monitor.LatencyHistogram` has ~170 log buckets for
accurate percentiles on the device; those cannot be merged across a fleet by a Prometheus
``histogram_quantile``. So telemetry also carries the interval's inferences counted in
the few Prometheus-style upper bounds below, the same on every device: the hub adds them
up per model version into one real histogram (``edgekit_inference_latency_seconds``), and
the agent's ``/metrics`` uses the same bounds. Changing the bounds is a contract change:
the hub merges only histograms whose ``le`` equals :data:`LATENCY_BUCKETS_S`.

Wire form: ``{"le": [...], "counts": [...], "sum_s": s}`` with ``le`` the finite upper
bounds in seconds, ``counts[i]`` the inferences with ``le[i-1] < latency <= le[i]`` (not
cumulative) and one more entry for those above ``le[-1]`` (the ``+Inf`` bucket), and
``sum_s`` the sum of their latencies in seconds.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass
from typing import Any

from edge.errors import ContractError

# 0.5 ms .. 30 s: a fast int8 model on a desktop core to a slow one on a microcontroller
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
MAX_BUCKETS = 64  # a payload with more is refused, not stored


def latency_bucket(seconds: float, bounds: tuple[float, ...] = LATENCY_BUCKETS_S) -> int:
    """Index into ``counts`` for one latency: the first bound >= it (``le`` semantics)."""
    return bisect.bisect_left(bounds, seconds)


@dataclass(frozen=True)
class LatencyBuckets:
    """One interval's (or, on the agent, one run's) latencies in fixed buckets."""

    le: tuple[float, ...]
    counts: tuple[int, ...]
    sum_s: float

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[int]:
        """Prometheus ``_bucket`` values: observations <= each bound, then ``+Inf``."""
        out, running = [], 0
        for c in self.counts:
            running += c
            out.append(running)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"le": list(self.le), "counts": list(self.counts), "sum_s": self.sum_s}

    @staticmethod
    def parse(obj: Any, where: str = "telemetry latency_histogram") -> LatencyBuckets | None:
        """The wire form back (``None`` stays ``None``); ContractError for anything that
        could not be merged: bounds not strictly increasing and finite, a count per bucket
        plus one, counts negative or not integers, a sum negative or not finite."""
        if obj is None:
            return None
        if not isinstance(obj, dict):
            raise ContractError(f"{where}: must be an object or null")
        le, counts, sum_s = obj.get("le"), obj.get("counts"), obj.get("sum_s")
        if not isinstance(le, list) or not 1 <= len(le) <= MAX_BUCKETS:
            raise ContractError(f"{where}: 'le' must be a list of 1..{MAX_BUCKETS} bounds")
        if not all(_finite(b) and b > 0 for b in le):
            raise ContractError(f"{where}: every 'le' bound must be a positive finite number")
        if any(b >= n for b, n in itertools.pairwise(le)):
            raise ContractError(f"{where}: 'le' bounds must be strictly increasing")
        if not isinstance(counts, list) or len(counts) != len(le) + 1:
            raise ContractError(f"{where}: 'counts' must have one entry per bound plus one")
        if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts):
            raise ContractError(f"{where}: 'counts' must be non-negative integers")
        if not isinstance(sum_s, (int, float)) or not _finite(sum_s) or sum_s < 0:
            raise ContractError(f"{where}: 'sum_s' must be a non-negative finite number")
        return LatencyBuckets(
            le=tuple(float(b) for b in le), counts=tuple(counts), sum_s=float(sum_s)
        )


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
