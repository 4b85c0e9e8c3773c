"""Telemetry storage: raw rows for a day, per-minute aggregates for a month (configurable).

Writes come in batches from the MQTT bridge. Minute aggregates are maintained at write time
(merged, weighted by sample count), so late telemetry replayed from an agent's outbox lands
in the right minute without rescanning raw rows; the periodic compaction job only deletes
what is past retention. Within a minute: inferences and errors are summed, p95 latency and
drift keep the maximum (conservative), the rest are means.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from cloud.hub.models import Device, TelemetryMinute, TelemetryRaw
from edge.contract import Telemetry

SUMMED = ("inferences", "errors")
MAXED = ("latency_p95", "drift")
MEANED = ("latency_p50", "throughput", "confidence", "accuracy")


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
    }


def write_batch(db: Session, items: Iterable[Telemetry]) -> int:
    """Insert raw rows, merge minute aggregates and refresh device KPIs in one transaction."""
    rows: list[dict[str, Any]] = []
    minutes: dict[tuple[str, int, str, int], list[Sample]] = {}
    latest: dict[str, tuple[Telemetry, Sample]] = {}
    for t in items:
        s = Sample.of(t.metrics)
        name = t.model.name if t.model else ""
        version = t.model.version if t.model else 0
        rows.append(
            {
                "device_id": t.device, "ts": t.ts, "seq": t.seq, "boot": t.boot,
                "model_name": t.model.name if t.model else None,
                "model_version": t.model.version if t.model else None,
                "inferences": s.inferences, "errors": s.errors, "error_rate": s.error_rate,
                "latency_p50": s.latency_p50, "latency_p95": s.latency_p95,
                "throughput": s.throughput, "confidence": s.confidence, "drift": s.drift,
                "accuracy": s.accuracy, "metrics": t.metrics,
            }
        )  # fmt: skip
        minutes.setdefault((t.device, int(t.ts // 60) * 60, name, version), []).append(s)
        prev = latest.get(t.device)
        if prev is None or t.ts >= prev[0].ts:
            latest[t.device] = (t, s)
    if not rows:
        return 0
    db.execute(insert(TelemetryRaw), rows)
    _merge_minutes(db, minutes)
    now = time.time()
    devices = {d.id: d for d in db.scalars(select(Device).where(Device.id.in_(list(latest))))}
    for device_id, (t, s) in latest.items():
        dev = devices.get(device_id)
        if dev is None:
            dev = Device(id=device_id, tags=[], first_seen=now, capabilities={}, kpis={})
            db.add(dev)
        if dev.kpis_ts is None or t.ts >= dev.kpis_ts:
            dev.kpis, dev.kpis_ts = device_kpis(t, s), t.ts
        dev.last_seen = max(dev.last_seen or 0.0, now)
    return len(rows)


def _merge_minutes(db: Session, minutes: dict[tuple[str, int, str, int], list[Sample]]) -> None:
    """Merge samples into minute rows, loading every affected row in one query."""
    T = TelemetryMinute
    existing = {
        (m.device_id, m.minute, m.model_name, m.model_version): m
        for m in db.scalars(
            select(T).where(
                T.device_id.in_({k[0] for k in minutes}), T.minute.in_({k[1] for k in minutes})
            )
        )
    }
    for key, samples in minutes.items():
        row = existing.get(key)
        if row is None:
            device, minute, name, version = key
            row = T(
                device_id=device, minute=minute, model_name=name, model_version=version,
                samples=0, inferences=0, errors=0,
            )  # fmt: skip
            db.add(row)
        _merge_row(row, samples)
    db.flush()


def _merge_row(row: TelemetryMinute, samples: list[Sample]) -> None:
    n_old = row.samples
    for s in samples:
        row.inferences += s.inferences
        row.errors += s.errors
    for col in MAXED:
        vals = [v for v in (getattr(s, col) for s in samples) if v is not None]
        cur = getattr(row, col)
        if vals:
            setattr(row, col, max(vals + ([cur] if cur is not None else [])))
    for col in MEANED:
        vals = [v for v in (getattr(s, col) for s in samples) if v is not None]
        if not vals:
            continue
        cur = getattr(row, col)
        if cur is None or n_old == 0:
            setattr(row, col, sum(vals) / len(vals))
        else:
            setattr(row, col, (cur * n_old + sum(vals)) / (n_old + len(vals)))
    row.samples = n_old + len(samples)


def compact(
    db: Session, now: float, raw_retention_s: float, minute_retention_s: float
) -> tuple[int, int]:
    """Drop raw rows and minute aggregates past their retention; returns rows deleted."""
    raw = db.execute(delete(TelemetryRaw).where(TelemetryRaw.ts < now - raw_retention_s))
    mins = db.execute(
        delete(TelemetryMinute).where(TelemetryMinute.minute < now - minute_retention_s)
    )
    return int(getattr(raw, "rowcount", 0) or 0), int(getattr(mins, "rowcount", 0) or 0)


def _rate(inferences: float, errors: float) -> float | None:
    total = inferences + errors
    return errors / total if total else None


def device_series(
    db: Session, device: str, since: float, until: float, resolution: str, limit: int
) -> list[dict[str, Any]]:
    if resolution == "raw":
        q = (
            select(TelemetryRaw)
            .where(
                TelemetryRaw.device_id == device, TelemetryRaw.ts >= since, TelemetryRaw.ts <= until
            )
            .order_by(TelemetryRaw.ts.desc())
            .limit(limit)
        )
        return [
            {
                "ts": r.ts, "seq": r.seq,
                "model": _model(r.model_name, r.model_version),
                "inferences": r.inferences, "errors": r.errors, "error_rate": r.error_rate,
                "latency_p50": r.latency_p50, "latency_p95": r.latency_p95,
                "throughput": r.throughput, "confidence": r.confidence, "drift": r.drift,
                "accuracy": r.accuracy,
            }
            for r in reversed(db.scalars(q).all())
        ]  # fmt: skip
    q2 = (
        select(TelemetryMinute)
        .where(
            TelemetryMinute.device_id == device,
            TelemetryMinute.minute >= int(since // 60) * 60,
            TelemetryMinute.minute <= until,
        )
        .order_by(TelemetryMinute.minute.desc())
        .limit(limit)
    )
    return [_minute_json(m) for m in reversed(db.scalars(q2).all())]


def _model(name: str | None, version: int | None) -> dict[str, Any] | None:
    return {"name": name, "version": version} if name else None


def _minute_json(m: TelemetryMinute) -> dict[str, Any]:
    return {
        "ts": float(m.minute), "samples": m.samples,
        "model": {"name": m.model_name, "version": m.model_version} if m.model_name else None,
        "inferences": m.inferences, "errors": m.errors, "error_rate": _rate(m.inferences, m.errors),
        "latency_p50": m.latency_p50, "latency_p95": m.latency_p95, "throughput": m.throughput,
        "confidence": m.confidence, "drift": m.drift, "accuracy": m.accuracy,
    }  # fmt: skip


def model_series(
    db: Session, name: str, version: int, since: float, until: float
) -> list[dict[str, Any]]:
    """Per-minute aggregates over every device that ran this version."""
    T = TelemetryMinute
    q = (
        select(
            T.minute,
            func.count(func.distinct(T.device_id)),
            func.sum(T.inferences), func.sum(T.errors),
            func.avg(T.latency_p50), func.max(T.latency_p95), func.sum(T.throughput),
            func.avg(T.confidence), func.max(T.drift), func.avg(T.accuracy),
        )
        .where(T.model_name == name, T.model_version == version,
               T.minute >= int(since // 60) * 60, T.minute <= until)
        .group_by(T.minute)
        .order_by(T.minute)
    )  # fmt: skip
    out = []
    for minute, devices, inf, err, p50, p95, thr, conf, drift, acc in db.execute(q):
        out.append(
            {
                "ts": float(minute), "devices": int(devices), "inferences": int(inf or 0),
                "errors": int(err or 0), "error_rate": _rate(inf or 0, err or 0),
                "latency_p50": p50, "latency_p95": p95, "throughput": thr,
                "confidence": conf, "drift": drift, "accuracy": acc,
            }
        )  # fmt: skip
    return out


def model_summary(points: list[dict[str, Any]]) -> dict[str, Any]:
    inf = sum(p["inferences"] for p in points)
    err = sum(p["errors"] for p in points)

    def mean(key: str) -> float | None:
        vals = [p[key] for p in points if p[key] is not None]
        return sum(vals) / len(vals) if vals else None

    drifts = [p["drift"] for p in points if p["drift"] is not None]
    return {
        "minutes": len(points),
        "inferences": inf,
        "errors": err,
        "error_rate": _rate(inf, err),
        "latency_p95": mean("latency_p95"),
        "confidence": mean("confidence"),
        "drift": max(drifts) if drifts else None,
        "accuracy": mean("accuracy"),
    }
