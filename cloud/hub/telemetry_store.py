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
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from cloud.hub.models import Device, TelemetryMinute, TelemetryRaw
from edge.contract import Telemetry

SUMMED = ("inferences", "errors")
MAXED = ("latency_p95", "drift")
MEANED = ("latency_p50", "throughput", "confidence", "accuracy")
RAW_TABLE = cast(Table, TelemetryRaw.__table__)
MINUTE_TABLE = cast(Table, TelemetryMinute.__table__)
DEVICE_TABLE = cast(Table, Device.__table__)


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


def mark_stale_offline(
    db: Session, now: float, stale_intervals: float, offline_after_s: float
) -> list[str]:
    """Flip devices that went silent (no will: the broker has not noticed yet) to offline;
    returns their ids. Telemetry from them later flips them back (``write_batch``)."""
    d = DEVICE_TABLE
    rows = db.execute(select(d.c.id, d.c.last_seen, d.c.kpis).where(d.c.online.is_(True)))
    stale = [
        device_id
        for device_id, last_seen, kpis in rows
        if now - (last_seen or 0.0)
        > staleness_window((kpis or {}).get("interval_s"), stale_intervals, offline_after_s)
    ]
    if stale:
        db.execute(update(d).where(d.c.id.in_(stale), d.c.online.is_(True)).values(online=False))
    return stale


def write_batch(
    db: Session,
    items: Iterable[Telemetry],
    stale_intervals: float = 3.0,
    offline_after_s: float = 60.0,
) -> int:
    """Insert raw rows, merge minute aggregates and refresh device KPIs in one transaction.

    Core statements only (executemany, no ORM unit of work), one SELECT for the batch's
    minute rows and one for its devices: the bridge's writer thread is the hub's ingest
    bottleneck, and the ORM cost several times the SQL itself.
    """
    rows: list[dict[str, Any]] = []
    minutes: dict[MinuteKey, list[Sample]] = {}
    latest: dict[str, tuple[Telemetry, Sample]] = {}
    for t in items:
        s = Sample.of(t.metrics)
        name = t.model.name if t.model else None
        version = t.model.version if t.model else None
        rows.append(
            {
                "device_id": t.device, "ts": t.ts, "seq": t.seq, "boot": t.boot,
                "model_name": name, "model_version": version,
                "inferences": s.inferences, "errors": s.errors, "error_rate": s.error_rate,
                "latency_p50": s.latency_p50, "latency_p95": s.latency_p95,
                "throughput": s.throughput, "confidence": s.confidence, "drift": s.drift,
                "accuracy": s.accuracy, "metrics": t.metrics,
            }
        )  # fmt: skip
        key = (t.device, int(t.ts // 60) * 60, name or "", version or 0)
        minutes.setdefault(key, []).append(s)
        prev = latest.get(t.device)
        if prev is None or t.ts >= prev[0].ts:
            latest[t.device] = (t, s)
    if not rows:
        return 0
    db.execute(insert(RAW_TABLE), rows)
    _merge_minutes(db, minutes)
    _refresh_devices(db, latest, time.time(), stale_intervals, offline_after_s)
    return len(rows)


MinuteKey = tuple[str, int, str, int]
AGGREGATES = ("samples", "inferences", "errors", *MAXED, *MEANED)


def _merge_minutes(db: Session, minutes: dict[MinuteKey, list[Sample]]) -> None:
    """Merge samples into minute rows: one SELECT, then bulk INSERT and bulk UPDATE."""
    t = MINUTE_TABLE
    key_cols = (t.c.device_id, t.c.minute, t.c.model_name, t.c.model_version)
    query = select(t.c.id, *key_cols, *(t.c[c] for c in AGGREGATES)).where(
        t.c.device_id.in_({k[0] for k in minutes}), t.c.minute.in_({k[1] for k in minutes})
    )
    existing = {tuple(r[1:5]): r._asdict() for r in db.execute(query)}
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for key, samples in minutes.items():
        row = existing.get(key)
        if row is None:
            device, minute, name, version = key
            row = dict.fromkeys(AGGREGATES)
            row.update(device_id=device, minute=minute, model_name=name, model_version=version,
                       samples=0, inferences=0, errors=0)  # fmt: skip
            _merge_row(row, samples)
            inserts.append(row)
        else:
            _merge_row(row, samples)
            updates.append({"b_id": row["id"], **{f"b_{c}": row[c] for c in AGGREGATES}})
    if inserts:
        db.execute(insert(t), inserts)
    if updates:
        stmt = (
            update(t)
            .where(t.c.id == bindparam("b_id"))
            .values({c: bindparam(f"b_{c}") for c in AGGREGATES})
        )
        db.execute(stmt, updates)


def _merge_row(row: dict[str, Any], samples: list[Sample]) -> None:
    n_old = row["samples"]
    row["inferences"] += sum(s.inferences for s in samples)
    row["errors"] += sum(s.errors for s in samples)
    for col in MAXED:
        vals = [v for v in (getattr(s, col) for s in samples) if v is not None]
        if vals:
            cur = row[col]
            row[col] = max(vals) if cur is None else max(cur, *vals)
    for col in MEANED:
        vals = [v for v in (getattr(s, col) for s in samples) if v is not None]
        if not vals:
            continue
        cur = row[col]
        if cur is None or n_old == 0:
            row[col] = sum(vals) / len(vals)
        else:
            row[col] = (cur * n_old + sum(vals)) / (n_old + len(vals))
    row["samples"] = n_old + len(samples)


def _refresh_devices(
    db: Session,
    latest: dict[str, tuple[Telemetry, Sample]],
    now: float,
    stale_intervals: float,
    offline_after_s: float,
) -> None:
    """Newest KPIs per device (an older, late message never overwrites newer ones), last
    seen, and rows for devices first heard of through telemetry — coalesced per batch.

    A device marked offline only because it went silent is online again once it sends:
    an offline device whose last message is older than its staleness window. A fresh
    ``offline`` will (it set ``last_seen`` just now) is never overridden."""
    d = DEVICE_TABLE
    query = select(d.c.id, d.c.kpis_ts, d.c.online, d.c.last_seen).where(d.c.id.in_(list(latest)))
    known = {r.id: r for r in db.execute(query)}
    new: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for device_id, (t, s) in latest.items():
        row = known.get(device_id)
        if row is None:
            kp = device_kpis(t, s)
            new.append({"id": device_id, "tags": [], "first_seen": now, "last_seen": now,
                        "capabilities": {}, "kpis": kp, "kpis_ts": t.ts})  # fmt: skip
            continue
        window = staleness_window(t.metrics.get("interval_s"), stale_intervals, offline_after_s)
        back = not row.online and now - (row.last_seen or 0.0) > window
        fresh = row.kpis_ts is None or t.ts >= row.kpis_ts
        updates.append(
            {
                "b_id": device_id,
                "b_kpis": device_kpis(t, s) if fresh else None,
                "b_ts": t.ts if fresh else row.kpis_ts,
                "b_online": True if back else row.online,
            }
        )
    if new:
        db.execute(insert(d), new)
    fresh_rows = [u for u in updates if u["b_kpis"] is not None]
    if fresh_rows:
        stmt = (
            update(d)
            .where(d.c.id == bindparam("b_id"))
            .values(kpis=bindparam("b_kpis"), kpis_ts=bindparam("b_ts"),
                    online=bindparam("b_online"), last_seen=now)
        )  # fmt: skip
        db.execute(stmt, fresh_rows)
    stale_rows = [
        {"b_id": u["b_id"], "b_online": u["b_online"]} for u in updates if u["b_kpis"] is None
    ]
    if stale_rows:
        stmt = (
            update(d)
            .where(d.c.id == bindparam("b_id"))
            .values(online=bindparam("b_online"), last_seen=now)
        )
        db.execute(stmt, stale_rows)


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
