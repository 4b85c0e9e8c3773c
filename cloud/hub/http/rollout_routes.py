"""Rollout routes: create, list, show (waves, gates, audit) and operator actions."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import select

from cloud.errors import ApiError
from cloud.hub.context import db, hub
from cloud.hub.http.auth import require
from cloud.hub.http.common import actor, json_body
from cloud.hub.http.shapes import rollout_json
from cloud.hub.rollout import RolloutError, to_state
from cloud.hub.rollout.core.machine import ACTIONS, RolloutState
from cloud.hub.storage import Device, Rollout

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
    try:
        r = hub().service.create(body, actor())
    except RolloutError as exc:
        raise _rollout_error(exc) from exc
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc)) from exc
    return jsonify({"id": r.id, "state": r.state}), 201


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
    return jsonify(rollout_json(r, _target_size(r)))


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
