"""Helpers every route module shares: the JSON body and who is acting."""

from __future__ import annotations

from typing import Any

from flask import request

from cloud.errors import ApiError
from cloud.hub.context import db
from cloud.hub.http.auth import current_principal


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong."""
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "bad_json", "send a JSON object with Content-Type: application/json")
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return data


def actor() -> str | None:
    p = current_principal(db())
    return p.name if p else None
