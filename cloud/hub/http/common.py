"""Helpers every route module shares: the JSON body and who is acting."""

from __future__ import annotations

from typing import Any

from flask import request

from cloud.errors import ApiError
from cloud.hub.context import db
from cloud.hub.http.auth import current_principal


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong."""
    raw = request.get_data(cache=True)  # a body over the limit is a 413 here, not "bad JSON"
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(raw) >= limit:
        # a chunked body is cut at the limit by the stream, silently: say so
        raise ApiError(413, "too_large", f"request bodies here are limited to {limit} bytes")
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "bad_json", "send a JSON object with Content-Type: application/json")
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return data


def actor() -> str | None:
    p = current_principal(db())
    return p.name if p else None
