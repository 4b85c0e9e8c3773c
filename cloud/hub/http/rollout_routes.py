"""Rollout routes: create, list, show (waves, gates, audit) and operator actions."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import select

from cloud.errors import ApiError
from cloud.hub import champion
from cloud.hub.context import db, hub
from cloud.hub.http.auth import require
from cloud.hub.http.common import actor, json_body
from cloud.hub.http.shapes import rollout_json
from cloud.hub.rollout import RolloutError, to_state
from cloud.hub.rollout.core.machine import ACTIONS, RolloutState
from cloud.hub.rollout.core.spec import RolloutSpec
from cloud.hub.storage import Device, ModelVersion, Rollout

bp = Blueprint("rollouts", __name__)

ROUTE_ACTIONS = ("pause", "resume", "abort", "rollback", "retry", "approve")


def _target_size(r: RolloutState) -> int:
    rows = db().execute(select(Device.id, Device.tags)).all()
    return sum(1 for dev_id, tags in rows if r.spec.targets(dev_id, tuple(tags or ())))


def _rollout_error(exc: RolloutError) -> ApiError:
    return ApiError(
        409 if exc.conflict else 400, "conflict" if exc.conflict else "invalid", str(exc)
    )


@bp.post("/rollouts")
@require("operator")
def create_rollout() -> Any:
    body = json_body()
    force = body.pop("force", False)
    if not isinstance(force, bool):
        raise ApiError(400, "invalid", "'force' must be true or false")
    try:
        check = _champion_check(body)
        if check is not None and check.worse and not force:
            row = champion.record(db(), check, "rollout", actor=actor())
            db().commit()
            return jsonify({
                "error": {"code": "champion", "message": f"refused by the champion check: "
                          f"{check.reason}; tick \"force\" (API: \"force\": true) to roll it "
                          "out anyway"},
                "champion": champion.comparison_json(row),
            }), 409  # fmt: skip
        db().commit()  # end the check's read transaction before the service's own
        notes = [] if check is None else [_audit_note(check, force)]
        r = hub().service.create(body, actor(), notes=notes)
    except RolloutError as exc:
        raise _rollout_error(exc) from exc
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    if check is not None:
        champion.record(db(), check, "rollout", rollout_id=r.id, forced=force and check.worse,
                        actor=actor())  # fmt: skip
        db().commit()
    return jsonify({"id": r.id, "state": r.state}), 201


def _champion_check(body: dict[str, Any]) -> champion.Comparison | None:
    """The candidate against the version the rollout's target devices run now; None when
    the spec is invalid or the version unknown (the service then says why)."""
    spec = RolloutSpec.parse(body, default_timeout_s=hub().config.deploy_timeout_s)
    m = db().scalar(
        select(ModelVersion).where(
            ModelVersion.name == spec.model, ModelVersion.version == spec.version
        )
    )
    if m is None:
        return None
    rows = db().execute(select(Device.id, Device.tags)).all()
    targets = [dev_id for dev_id, tags in rows if spec.targets(dev_id, tuple(tags or ()))]
    return champion.check(db(), hub().config, m, targets)


def _audit_note(check: champion.Comparison, force: bool) -> tuple[str, str]:
    versus = f" against v{check.champion['version']}" if check.champion else ""
    if check.worse and force:
        return "force", f"champion check{versus} overridden by the operator: {check.reason}"
    return "champion", f"champion check{versus}: {check.decision}: {check.reason}"


@bp.get("/rollouts")
@require("viewer")
def list_rollouts() -> Any:
    q = select(Rollout).order_by(Rollout.created.desc())
    state = request.args.get("state")
    if state:
        q = q.where(Rollout.state == state)
    out = []
    for row in db().scalars(q.limit(500)):
        r = to_state(row)
        out.append(rollout_json(r, _target_size(r), full=False))
    return jsonify(out)


@bp.get("/rollouts/<rid>")
@require("viewer")
def show_rollout(rid: str) -> Any:
    row = db().get(Rollout, rid)
    if row is None:
        raise ApiError(404, "not_found", f"rollout {rid!r} does not exist")
    r = to_state(row)
    check = champion.latest(db(), row.model_name, row.model_version, rollout_id=rid)
    out = rollout_json(r, _target_size(r))
    out["champion"] = champion.comparison_json(check) if check is not None else None
    return jsonify(out)


@bp.post("/rollouts/<rid>/<action>")
@require("operator")
def rollout_action(rid: str, action: str) -> Any:
    if action not in ROUTE_ACTIONS or action not in ACTIONS:
        raise ApiError(404, "not_found", f"unknown action {action!r}: {', '.join(ROUTE_ACTIONS)}")
    try:
        r = hub().service.act(rid, action, actor())
    except RolloutError as exc:
        raise _rollout_error(exc) from exc
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    return jsonify(rollout_json(r, _target_size(r)))
