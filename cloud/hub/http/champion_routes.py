"""The champion check of a version (``/api/v1/models/<name>/<version>/comparison``): the
stored comparison (made at upload, or the newest made since), or a fresh one on demand.
The rule is cloud/hub/champion/rule.py's; shapes in docs/hub-api.md, "Champion check"."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from cloud.errors import ApiError
from cloud.hub import champion
from cloud.hub.context import db, hub
from cloud.hub.http.auth import require
from cloud.hub.http.common import actor
from cloud.hub.http.model_routes import get_model

bp = Blueprint("champion", __name__)


@bp.get("/models/<name>/<version>/comparison")
@require("viewer")
def show_comparison(name: str, version: str) -> Any:
    m = get_model(name, version)
    row = champion.latest(db(), m.name, m.version)
    if row is None:
        raise ApiError(404, "not_found", f"{name} v{m.version} has no champion check yet")
    return jsonify(champion.comparison_json(row))


@bp.post("/models/<name>/<version>/comparison")
@require("operator")
def run_comparison(name: str, version: str) -> Any:
    """Check again now (after more field data was labeled), against the fleet's champion."""
    m = get_model(name, version)
    result = champion.check(db(), hub().config, m, None)
    row = champion.record(db(), result, "manual", actor=actor())
    db().commit()
    return jsonify(champion.comparison_json(row)), 201
