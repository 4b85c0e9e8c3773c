"""The values the hub takes from one telemetry payload: the stored columns (``Sample``), the
latest-KPI summary kept on the device row, and the staleness window it implies. Every
value is read defensively: a malformed metric becomes None, never an error, because the
raw payload is kept and one bad field must not lose the rest."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from edge.contract import Telemetry


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _sub(metrics: dict[str, Any], key: str, sub: str) -> float | None:
    obj = metrics.get(key)
    return _num(obj.get(sub)) if isinstance(obj, dict) else None


def _count(v: Any) -> int:
    if isinstance(v, dict):
        return int(sum(n for n in (_num(x) for x in v.values()) if n is not None))
    n = _num(v)
    return int(n) if n is not None and n >= 0 else 0


@dataclass(frozen=True)
class Sample:
    """The columns the hub keeps from one telemetry payload (malformed values -> None)."""

    inferences: int
    errors: int
    error_rate: float | None
    latency_p50: float | None
    latency_p95: float | None
    throughput: float | None
    confidence: float | None
    drift: float | None
    accuracy: float | None

    @staticmethod
    def of(metrics: dict[str, Any]) -> Sample:
        drifts = [
            d
            for d in (_sub(metrics, "drift", "input_psi"), _sub(metrics, "drift", "output_psi"))
            if d is not None
        ]
        inferences, errors = _count(metrics.get("inferences")), _count(metrics.get("errors"))
        rate = _num(metrics.get("error_rate"))
        if rate is None and inferences + errors:
            rate = errors / (inferences + errors)
        return Sample(
            inferences=inferences,
            errors=errors,
            error_rate=rate,
            latency_p50=_sub(metrics, "latency_ms", "p50"),
            latency_p95=_sub(metrics, "latency_ms", "p95"),
            throughput=_num(metrics.get("throughput_per_s")),
            confidence=_num(metrics.get("confidence_mean")),
            drift=max(drifts) if drifts else None,
            accuracy=_sub(metrics, "accuracy", "value"),
        )


def device_kpis(t: Telemetry, s: Sample) -> dict[str, Any]:
    """The latest-KPI summary kept on the device row (what the fleet matrix shows)."""
    m = t.metrics
    drift = m.get("drift") if isinstance(m.get("drift"), dict) else {}
    return {
        "model": {"name": t.model.name, "version": t.model.version} if t.model else None,
        "ts": t.ts,
        "error_rate": s.error_rate,
        "p50_latency_ms": s.latency_p50,
        "p95_latency_ms": s.latency_p95,
        "throughput_per_s": s.throughput,
        "confidence": s.confidence,
        "drift": s.drift,
        "drift_alert": bool(drift.get("alert")) if isinstance(drift, dict) else False,
        "accuracy": s.accuracy,
        "inferences_total": _num(m.get("inferences_total")),
        "cpu_percent": _num(m.get("cpu_percent")),
        "memory_rss_mb": _num(m.get("memory_rss_mb")),
        "interval_s": _num(m.get("interval_s")),
    }


def staleness_window(interval_s: Any, stale_intervals: float, offline_after_s: float) -> float:
    """Seconds of silence after which a device counts as offline without a will."""
    n = _num(interval_s)
    return stale_intervals * n if n is not None and n > 0 else offline_after_s
