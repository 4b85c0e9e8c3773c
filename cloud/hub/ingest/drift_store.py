"""Drifting features per device: which feature, since when, on which devices.

Each device's newest telemetry (the one that sets its KPIs, in device time: see
device_reports.py) updates the ``drift_features`` rows of that device: while it reports a
drift alert, every signal over its threshold is upserted (``first_seen`` kept, so it says
since when; ``last_seen`` and the PSI move on); when it reports no alert, all its rows go.
A telemetry message without a readable drift block changes nothing. Per batch: one
executemany upsert and at most one DELETE, never a read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import Table, delete, select
from sqlalchemy.orm import Session

from cloud.hub.ingest.telemetry_fields import TelemetryLike, drift_reading
from cloud.hub.storage import DriftFeature, bulk_sql

TABLE = cast(Table, DriftFeature.__table__)
KEY = ("device_id", "kind", "name")
MOVING = ("psi", "threshold", "last_seen", "model_name", "model_version")
UPSERT = (
    bulk_sql.insert_sql(TABLE.name, (*KEY, "first_seen", *MOVING))
    + f" ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in MOVING)
)


def apply(db: Session, newest: Iterable[TelemetryLike]) -> None:
    """Update the drift rows of each device from its newest telemetry (one per device)."""
    rows: list[tuple[Any, ...]] = []
    cleared: list[str] = []
    for t in newest:
        reading = drift_reading(t.metrics)
        if reading is None:
            continue
        if not reading.alert:
            cleared.append(t.device)
            continue
        name, version = (t.model.name, t.model.version) if t.model else (None, None)
        for s in reading.signals:
            rows.append((t.device, s.kind, s.name, t.ts, s.psi, s.threshold, t.ts, name, version))
    if cleared:
        db.execute(delete(DriftFeature).where(DriftFeature.device_id.in_(sorted(cleared))))
    rows.sort(key=lambda r: r[:3])  # one lock order for every writer (PostgreSQL)
    bulk_sql.executemany(db, UPSERT, rows)


def _json(r: DriftFeature) -> dict[str, Any]:
    model = {"name": r.model_name, "version": r.model_version} if r.model_name else None
    return {
        "device": r.device_id,
        "kind": r.kind,
        "name": r.name,
        "psi": r.psi,
        "threshold": r.threshold,
        "since": r.first_seen,
        "last_seen": r.last_seen,
        "model": model,
    }


def device_drift(db: Session, device_id: str) -> list[dict[str, Any]]:
    """A device's drifting signals, highest PSI first."""
    q = select(DriftFeature).where(DriftFeature.device_id == device_id)
    rows = db.scalars(q.order_by(DriftFeature.psi.desc(), DriftFeature.name)).all()
    return [_json(r) for r in rows]


def fleet_drift(
    db: Session, name: str | None = None, kind: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Every drifting signal of the fleet (optionally one feature ``name`` or ``kind``),
    by device, highest PSI first."""
    q = select(DriftFeature)
    if name is not None:
        q = q.where(DriftFeature.name == name)
    if kind is not None:
        q = q.where(DriftFeature.kind == kind)
    q = q.order_by(DriftFeature.device_id, DriftFeature.psi.desc(), DriftFeature.name)
    return [_json(r) for r in db.scalars(q.limit(limit)).all()]
