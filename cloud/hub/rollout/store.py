"""Round-trip pure ``RolloutState`` objects through the database and gather observations.

This is the only bridge between rollout.py (pure) and SQL: it maps rows to dataclasses and
back, and turns device rows plus their latest deploy events, what they served on the new
version (minute aggregates), commands other rollouts still have in flight and whether their
last reported capabilities can run the bundle (``edge.contract.runnable``) into
``DeviceObservation``s.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from cloud.hub.rollout.core import RolloutSpec, Wave
from cloud.hub.rollout.core.machine import (
    AuditRecord,
    DeploymentState,
    DeviceObservation,
    Kpis,
    RolloutState,
    StepReport,
    WaveState,
)
from cloud.hub.rollout.core.state import ShadowReport
from cloud.hub.storage import (
    AuditEntry,
    Deployment,
    Device,
    EventRow,
    ModelVersion,
    Rollout,
    RolloutWave,
    TelemetryMinute,
)
from edge.contract import INCOMPATIBLE, Manifest, runnable
from edge.errors import ContractError

log = logging.getLogger(__name__)

DEPLOY_KINDS = ("deploy", "rollback")
ACTIVE = ("running", "paused", "rolled_back")  # rollouts the ticker still advances
IN_FLIGHT = ("pending", "reverting")  # a command was sent and has not settled yet


def to_state(row: Rollout) -> RolloutState:
    spec = RolloutSpec.parse(row.spec)
    r = RolloutState(
        id=row.id,
        spec=spec,
        state=row.state,
        current_wave=row.current_wave,
        baseline=dict(row.baseline or {}),
        gates=list(row.gates or []),
        created=row.created,
        updated=row.updated,
        command_seq=int((row.baseline or {}).get("_command_seq", 0)),
    )
    r.baseline.pop("_command_seq", None)
    # each deployment's shadow report: kept in this JSON column, so no migration was needed
    shadows = r.baseline.pop("_shadow", None)
    shadows = shadows if isinstance(shadows, dict) else {}
    r.waves = [
        WaveState(w.index, Wave(w.kind, w.value), w.started, w.soak_started, w.finished, w.approved)
        for w in row.waves
    ]
    r.deployments = {
        d.device_id: DeploymentState(
            device=d.device_id,
            wave=d.wave,
            status=d.status,
            updated_by_rollout=d.updated_by_rollout,
            from_name=d.from_name,
            from_version=d.from_version,
            command_id=d.command_id,
            attempts=d.attempts,
            ordered_at=d.ordered_at,
            updated=d.updated,
            reason=d.reason,
            shadow=shadows.get(d.device_id),
        )
        for d in row.deployments
    }
    r.audit = [
        AuditRecord(a.ts, a.from_state, a.to_state, a.action, a.reason, a.actor) for a in row.audit
    ]
    return r


def save_state(db: Session, r: RolloutState, created_by: str | None = None) -> Rollout:
    """Insert or update the rows of a rollout (audit entries are append-only)."""
    row = db.get(Rollout, r.id)
    if row is None:
        row = Rollout(id=r.id, created=r.created, created_by=created_by, spec=r.spec.to_dict())
        db.add(row)
    row.model_name, row.model_version = r.spec.model, r.spec.version
    row.state, row.current_wave, row.updated = r.state, r.current_wave, r.updated
    row.baseline = {**r.baseline, "_command_seq": r.command_seq}
    shadows = {d.device: d.shadow for d in r.deployments.values() if d.shadow is not None}
    if shadows:
        row.baseline["_shadow"] = shadows
    row.gates = list(r.gates)
    waves = {w.index: w for w in row.waves}
    for ws in r.waves:
        w = waves.get(ws.index)
        if w is None:
            w = RolloutWave(index=ws.index, kind=ws.wave.kind, value=ws.wave.value)
            row.waves.append(w)
        w.started, w.soak_started, w.finished, w.approved = (
            ws.started, ws.soak_started, ws.finished, ws.approved
        )  # fmt: skip
    deps = {d.device_id: d for d in row.deployments}
    for ds in r.deployments.values():
        d = deps.get(ds.device)
        if d is None:
            d = Deployment(device_id=ds.device)
            row.deployments.append(d)
        d.wave, d.status, d.updated_by_rollout = ds.wave, ds.status, ds.updated_by_rollout
        d.from_name, d.from_version, d.command_id = ds.from_name, ds.from_version, ds.command_id
        d.attempts, d.ordered_at, d.updated, d.reason = (
            ds.attempts, ds.ordered_at, ds.updated, ds.reason
        )  # fmt: skip
    for a in r.audit[len(row.audit) :]:
        row.audit.append(
            AuditEntry(
                ts=a.ts,
                from_state=a.from_state,
                to_state=a.to_state,
                action=a.action,
                reason=a.reason,
                actor=a.actor,
            )
        )
    db.flush()
    return row


def kpis_of(device: Device | Row[Any], served: tuple[int, int] | None = None) -> Kpis | None:
    """The device's latest KPIs; ``served`` = (inferences, errors) on that version during
    the rollout, when the caller counted them."""
    k = device.kpis or {}
    model = k.get("model")
    if not isinstance(model, dict) or model.get("name") is None or model.get("version") is None:
        return None
    return Kpis(
        model=str(model["name"]),
        version=int(model["version"]),
        error_rate=_f(k.get("error_rate")),
        p95_latency_ms=_f(k.get("p95_latency_ms")),
        drift=_f(k.get("drift")),
        accuracy=_f(k.get("accuracy")),
        inferences=served[0] if served is not None else None,
        errors=served[1] if served is not None else None,
        ts=_f(k.get("ts")),
    )


def _f(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def served_on(db: Session, name: str, version: int, since: float) -> dict[str, tuple[int, int]]:
    """(inferences, errors) per device on one model version from the minute of ``since``."""
    m = TelemetryMinute
    rows = db.execute(
        select(m.device_id, func.sum(m.inferences), func.sum(m.errors))
        .where(m.model_name == name, m.model_version == version, m.minute >= int(since // 60) * 60)
        .group_by(m.device_id)
    )
    return {dev: (int(inf or 0), int(err or 0)) for dev, inf, err in rows}


def busy_devices(db: Session, rollout_id: str) -> dict[str, str]:
    """Device -> another active rollout whose deploy or rollback to it has not settled."""
    rows = db.execute(
        select(Deployment.device_id, Deployment.rollout_id)
        .join(Rollout, Rollout.id == Deployment.rollout_id)
        .where(
            Rollout.id != rollout_id,
            Rollout.state.in_(ACTIVE),
            Deployment.status.in_(IN_FLIGHT),
        )
    )
    return {dev: rid for dev, rid in rows}


def step_reason(e: EventRow) -> str:
    """Why the device says a step ended as it did: the agent's ``detail.reason`` with the
    step that failed ("probation failed: mean confidence 0.104 dropped ..."), else its
    message."""
    detail = e.detail if isinstance(e.detail, dict) else {}
    reason = str(detail.get("reason") or "").strip()
    if not reason:
        return e.message or ""
    if detail.get("code") == INCOMPATIBLE:
        return reason  # the words of the hub's own check (edge.contract.runnable)
    failed_step = detail.get("failed_step")
    if isinstance(failed_step, str) and failed_step and failed_step != "failed":
        return f"{failed_step} failed: {reason}"
    return reason


def step_code(e: EventRow) -> str:
    """The agent's stable reason word (``detail.code``), "" when it sent none."""
    code = e.detail.get("code") if isinstance(e.detail, dict) else None
    return code if isinstance(code, str) else ""


def bundle_manifest(db: Session, name: str, version: int) -> Manifest | None:
    """The registered bundle's manifest (checked at upload), None if it cannot be read."""
    raw = db.scalar(
        select(ModelVersion.manifest).where(
            ModelVersion.name == name, ModelVersion.version == version
        )
    )
    if raw is None:
        return None
    try:
        return Manifest.parse(raw)
    except ContractError as exc:  # uploaded by an older hub with other rules: cannot judge
        log.warning("manifest of %s v%s does not parse (%s): not checked", name, version, exc)
        return None


def incompatibility(
    manifest: Manifest | None, capabilities: Mapping[str, Any] | None
) -> str | None:
    """Why a device with these capabilities can run no variant, or None: it can, or it
    never reported them (then the deploy is sent and its agent decides)."""
    if manifest is None or not capabilities:
        return None
    usable, reason = runnable(manifest, capabilities)
    return None if usable else reason


def observe(db: Session, r: RolloutState) -> dict[str, DeviceObservation]:
    """Every device as it reports itself, plus its latest deploy step for this rollout,
    what it served on the new version since the rollout began, and whether another
    rollout's command to it is still in flight (it joins this one once that settled)."""
    steps = {
        e.device_id: StepReport(e.step or "", e.command, e.version, step_reason(e), step_code(e))
        for e in latest_events(db, r.id, EventRow.kind.in_(DEPLOY_KINDS))
    }
    shadows = {
        e.device_id: shadow_report(e)
        for e in latest_events(db, r.id, EventRow.kind == "deploy", EventRow.step == "shadow")
    }
    served = served_on(db, r.spec.model, r.spec.version, r.created)
    busy = busy_devices(db, r.id)
    target = (r.spec.model, r.spec.version)
    manifest = bundle_manifest(db, r.spec.model, r.spec.version)
    out: dict[str, DeviceObservation] = {}
    # a revoked device has no token and no broker account: it can neither receive a deploy
    # nor download the bundle, so it is no rollout's target
    # plain rows, not ORM objects: at 10,000 devices building them was most of a tick
    cols = (Device.id, Device.online, Device.tags, Device.model_name, Device.model_version,
            Device.kpis, Device.capabilities)  # fmt: skip
    for dev in db.execute(select(*cols).where(Device.revoked.is_(None))):
        model = (
            (dev.model_name, dev.model_version)
            if dev.model_name is not None and dev.model_version is not None
            else None
        )
        kpis = kpis_of(dev)
        if kpis is not None and (kpis.model, kpis.version) == target:
            kpis = kpis_of(dev, served.get(dev.id, (0, 0)))
        out[dev.id] = DeviceObservation(
            id=dev.id,
            online=dev.online,
            tags=tuple(dev.tags or ()),
            model=model,
            kpis=kpis,
            step=steps.get(dev.id),
            busy=busy.get(dev.id),
            incompatible=incompatibility(manifest, dev.capabilities),
            shadow=shadows.get(dev.id),
        )
    return out


def latest_events(db: Session, rollout_id: str, *where: Any) -> list[EventRow]:
    """Each device's latest step event of one rollout that matches ``where`` (by ts, then
    id), ranked in the database: a tick reads one row per device, not every event of the
    rollout (six per device by its end: 60,000 rows a second at 10,000 devices)."""
    rank = (
        func.row_number()
        .over(partition_by=EventRow.device_id, order_by=(EventRow.ts.desc(), EventRow.id.desc()))
        .label("rank")
    )
    ranked = (
        select(EventRow.id, rank)
        .where(EventRow.rollout == rollout_id, EventRow.step.is_not(None), *where)
        .subquery()
    )
    return list(
        db.scalars(
            select(EventRow).join(ranked, ranked.c.id == EventRow.id).where(ranked.c.rank == 1)
        )
    )


def shadow_report(e: EventRow) -> ShadowReport:
    """A ``shadow`` deploy event's detail as the device sent it, every field checked (a
    device's words are never trusted to be well-formed: anything odd becomes None)."""
    d = e.detail if isinstance(e.detail, dict) else {}
    agreement = _f(d.get("agreement"))
    if agreement is not None and not 0.0 <= agreement <= 1.0:
        agreement = None
    return ShadowReport(
        command=e.command,
        inputs=_count(d.get("inputs")) or 0,
        agreement=agreement,
        wanted=_count(d.get("wanted")),
        errors=_count(d.get("errors")) or 0,
        candidate_latency_ms=_percentiles(d.get("candidate_latency_ms")),
        served_latency_ms=_percentiles(d.get("served_latency_ms")),
    )


def _count(v: Any) -> int | None:
    ok = isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 10**9
    return v if ok else None


def _percentiles(v: Any) -> dict[str, float] | None:
    """``{"p50": ms, "p95": ms}``; older agents sent one mean (a number): ``{"mean": ms}``."""
    if _f(v) is not None:
        v = {"mean": v}
    if not isinstance(v, dict):
        return None
    keys = ("p50", "p95", "mean")
    out = {k: x for k in keys if (x := _f(v.get(k))) is not None and 0 <= x < 1e9}
    return out or None
