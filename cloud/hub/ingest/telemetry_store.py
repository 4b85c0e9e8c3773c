"""Telemetry storage: raw rows for a day, per-minute aggregates for a month (configurable).

Writes come in batches from the MQTT bridge. Minute aggregates are maintained at write time
(merged, weighted by sample count), so late telemetry replayed from an agent's outbox lands
in the right minute without rescanning raw rows; the periodic compaction job only deletes
what is past retention. Within a minute: inferences and errors are summed, p95 latency and
drift keep the maximum (conservative), the rest are means.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.orm import Session

from cloud.hub.ingest import device_reports, fleet_counters
from cloud.hub.ingest.telemetry_fields import Sample, TelemetryLike, staleness_window
from cloud.hub.storage import Device, TelemetryMinute, TelemetryRaw, bulk_sql
from edge.contract import encode_json

__all__ = ["Sample", "compact", "mark_stale_offline", "staleness_window", "write_batch"]

SUMMED = ("inferences", "errors")
MAXED = ("latency_p95", "drift")
MEANED = ("latency_p50", "throughput", "confidence", "accuracy")
RAW_TABLE = cast(Table, TelemetryRaw.__table__)
MINUTE_TABLE = cast(Table, TelemetryMinute.__table__)
DEVICE_TABLE = cast(Table, Device.__table__)


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


RAW_COLUMNS = ("device_id", "ts", "seq", "boot", "model_name", "model_version", "inferences",
               "errors", "error_rate", "latency_p50", "latency_p95", "throughput", "confidence",
               "drift", "accuracy", "metrics")  # fmt: skip


def write_batch(
    db: Session,
    items: Iterable[TelemetryLike],
    stale_intervals: float = 3.0,
    offline_after_s: float = 60.0,
) -> int:
    """Insert raw rows, merge minute aggregates and refresh device KPIs in one transaction.

    The bridge's writer is the hub's ingest bottleneck, so: raw rows go to the driver's
    executemany as tuples with the payload text as received in ``metrics`` (no
    re-encoding, no per-row bind processing); one upsert per minute row, merged by the
    database; one SELECT for the batch's devices and bulk UPDATEs for them (no ORM: it
    cost several times the SQL).
    """
    rows: list[tuple[Any, ...]] = []
    minutes: dict[MinuteKey, list[Sample]] = {}
    per_device: dict[str, list[tuple[TelemetryLike, Sample]]] = {}
    for t in items:
        s = Sample.of(t.metrics)
        model = t.model
        name, version = (model.name, model.version) if model is not None else (None, None)
        raw = getattr(t, "raw", None)
        rows.append((t.device, t.ts, t.seq, t.boot, name, version, s.inferences, s.errors,
                     s.error_rate, s.latency_p50, s.latency_p95, s.throughput, s.confidence,
                     s.drift, s.accuracy,
                     raw if raw is not None else encode_json(t.metrics).decode()))  # fmt: skip
        key = (t.device, int(t.ts // 60) * 60, name or "", version or 0)
        minutes.setdefault(key, []).append(s)
        per_device.setdefault(t.device, []).append((t, s))
    if not rows:
        return 0
    _insert_raw(db, rows)
    _merge_minutes(db, minutes)
    fleet_counters.add_telemetry(db, (p for pairs in per_device.values() for p in pairs))
    device_reports.refresh_from_telemetry(
        db, per_device, time.time(), stale_intervals, offline_after_s
    )
    return len(rows)


def _insert_raw(db: Session, rows: list[tuple[Any, ...]]) -> None:
    bulk_sql.executemany(db, bulk_sql.insert_sql(RAW_TABLE.name, RAW_COLUMNS), rows)


MinuteKey = tuple[str, int, str, int]
KEY_COLUMNS = ("device_id", "minute", "model_name", "model_version")
_T = MINUTE_TABLE.name


def _keep_max(col: str) -> str:
    """The larger of the stored and the batch value, NULL-aware (portable SQL)."""
    new, old = f"excluded.{col}", f"{_T}.{col}"
    return f"{col} = CASE WHEN {new} IS NULL THEN {old} WHEN {old} IS NULL OR {new} > {old} THEN {new} ELSE {old} END"  # noqa: E501


def _weighted_mean(col: str) -> str:
    """The stored mean weighted by its samples, merged with the batch's values; the three
    parameters are the batch's value count, sum and count."""
    old, n = f"{_T}.{col}", f"{_T}.samples"
    return (
        f"{col} = CASE WHEN ? = 0 THEN {old} WHEN {old} IS NULL OR {n} = 0 THEN excluded.{col} "
        f"ELSE ({old} * {n} + ?) / ({n} + ?) END"
    )


MINUTE_UPSERT = (
    bulk_sql.insert_sql(_T, (*KEY_COLUMNS, "samples", *SUMMED, *MAXED, *MEANED))
    + f" ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET "
    + ", ".join(
        [f"{c} = {_T}.{c} + excluded.{c}" for c in ("samples", *SUMMED)]
        + [_keep_max(c) for c in MAXED]
        + [_weighted_mean(c) for c in MEANED]
    )
)


def _merge_minutes(db: Session, minutes: dict[MinuteKey, list[Sample]]) -> None:
    """Merge each minute's samples into its row with one upsert per row, computed by the
    database (no read-modify-write: the writer's hot path, and safe against a second
    writer). Within a minute: sums, NULL-aware maxima, means weighted by sample count."""

    def present(samples: list[Sample], col: str) -> list[float]:
        return [v for s in samples if (v := getattr(s, col)) is not None]

    rows: list[tuple[Any, ...]] = []
    for key, samples in minutes.items():
        maxed = [max(vals) if (vals := present(samples, col)) else None for col in MAXED]
        means: list[Any] = []
        merge: list[Any] = []
        for col in MEANED:
            vals = present(samples, col)
            total, n = sum(vals), len(vals)
            means.append(total / n if n else None)
            merge += (n, total, n)
        rows.append((*key, len(samples), sum(s.inferences for s in samples),
                     sum(s.errors for s in samples), *maxed, *means, *merge))  # fmt: skip
    rows.sort(key=lambda r: r[:4])  # one lock order for every writer (PostgreSQL)
    bulk_sql.executemany(db, MINUTE_UPSERT, rows)


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
