"""JSON shapes of API resources (documented in docs/hub-api.md); one function per shape."""

from __future__ import annotations

from typing import Any

from cloud.hub.rollout.core.machine import RolloutState, wave_progress
from cloud.hub.storage import Device, EventRow, ModelVersion
from cloud.paths import scrub


def device_json(d: Device | Any) -> dict[str, Any]:
    """A device (an ORM object, or a row of api_devices.LIST_COLUMNS)."""
    model = None
    if d.model_name is not None and d.model_version is not None:
        model = {
            "name": d.model_name,
            "version": d.model_version,
            "runtime": d.model_runtime,
            "precision": d.model_precision,
        }
    return {
        "id": d.id,
        "online": d.online,
        "tags": list(d.tags or []),
        "enrolled": d.enrolled,
        "model": model,
        "agent_version": d.agent_version,
        "first_seen": d.first_seen,
        "last_seen": d.last_seen,
        "kpis": dict(d.kpis or {}),
        "kpis_ts": d.kpis_ts,
    }


def device_detail_json(d: Device) -> dict[str, Any]:
    return {**device_json(d), "capabilities": dict(d.capabilities or {}), "boot": d.boot,
            "capture": d.capture}  # fmt: skip


def model_json(m: ModelVersion, aliases: list[str] | None = None) -> dict[str, Any]:
    return {
        "name": m.name,
        "version": m.version,
        "sha256": m.sha256,
        "size": m.size,
        "created": m.created,
        "uploaded_by": m.uploaded_by,
        "aliases": sorted(aliases or []),
        "labels": m.manifest.get("labels", []),
        "variants": [f"{a['runtime']}-{a['precision']}" for a in m.manifest.get("artifacts", [])],
        "metrics": dict(m.metrics or {}),
    }


def model_detail_json(m: ModelVersion, aliases: list[str] | None = None) -> dict[str, Any]:
    return {
        **model_json(m, aliases),
        "manifest": m.manifest,
        "card": m.card,
        "variant_table": scrub(list(m.variants or [])),  # older bundles' reasons name paths
    }


def event_json(e: EventRow) -> dict[str, Any]:
    return {
        "id": e.id,
        "device": e.device_id,
        "ts": e.ts,
        "seq": e.seq,
        "kind": e.kind,
        "step": e.step,
        "message": e.message,
        "rollout": e.rollout,
        "command": e.command,
        "version": e.version,
        "detail": e.detail,
    }


def rollout_json(
    r: RolloutState, n_target: int | None = None, *, full: bool = True
) -> dict[str, Any]:
    waves = wave_progress(r, n_target)
    out: dict[str, Any] = {
        "id": r.id,
        "state": r.state,
        "model": r.spec.model,
        "version": r.spec.version,
        "current_wave": r.current_wave,
        "waiting_for": r.waiting_for,
        "created": r.created,
        "updated": r.updated,
        "target_size": n_target,
        "waves": waves,
        "committed": sum(w["committed"] for w in waves),
        "failed": sum(w["failed"] for w in waves),
        "incompatible": sum(w["incompatible"] for w in waves),  # not failed: see machine.py
    }
    if full:
        out["spec"] = r.spec.to_dict()
        out["gates"] = list(r.gates)
        out["baseline"] = dict(r.baseline)
        out["deployments"] = [
            {
                "device": d.device,
                "wave": d.wave,
                "status": d.status,
                "from": (
                    {"name": d.from_name, "version": d.from_version}
                    if d.from_name is not None
                    else None
                ),
                "command": d.command_id,
                "attempts": d.attempts,
                "updated": d.updated,
                "reason": d.reason,
                "shadow": d.shadow,  # its shadow run: agreement, inputs, latencies (or null)
            }
            for d in sorted(r.deployments.values(), key=lambda d: (d.wave, d.device))
        ]
        out["audit"] = [
            {
                "ts": a.ts,
                "from": a.from_state,
                "to": a.to_state,
                "action": a.action,
                "reason": a.reason,
                "actor": a.actor,
            }
            for a in r.audit
        ]
    return out
