"""What every request and response of the hub goes through, whatever its route.

- Bodies are bounded before they are read: a ``Content-Length`` over the route's limit is
  a 413 at once, a chunked body is cut at the same limit, and an upload is authenticated
  (and its role checked) before a byte of it is read.
- JSON is parsed with a nesting limit (Python's parser would recurse into a stack error).
- ``<int:...>`` route parts above what the database stores are "no such page" (404).
- Every response carries the security headers (CSP, frame options, nosniff, referrer).
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Flask, Response, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.routing import IntegerConverter

from cloud.errors import ApiError
from edge.contract import MAX_BATCH_BYTES

MAX_JSON_DEPTH = 64
MAX_DB_INT = 2**31 - 1  # the widest INTEGER every supported database stores
UPLOAD_ENDPOINTS = frozenset({"api.models.upload_model"})
# routes whose JSON bodies may be larger than max_body (a device's batch of samples)
BODY_LIMITS = {"api.samples.upload_samples": MAX_BATCH_BYTES}
# the fleet page loads its scripts, styles and images from /assets only; nothing may frame it
CSP = "; ".join([
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    "connect-src 'self'", "font-src 'self'", "object-src 'none'", "base-uri 'none'",
    "form-action 'self'", "frame-ancestors 'none'",
])  # fmt: skip
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """The deepest nesting of arrays/objects in ``text`` (strings skipped), in linear time."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub("", text)):
        if m.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, refusing documents nested deeper than :data:`MAX_JSON_DEPTH`."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        text = s.decode("utf-8", errors="replace") if isinstance(s, bytes) else s
        if json_depth(text) > MAX_JSON_DEPTH:
            raise ApiError(
                400, "bad_json", f"JSON nested deeper than {MAX_JSON_DEPTH} levels is refused"
            )
        try:
            return json.loads(s, **kwargs)
        except RecursionError:  # unreachable after the depth check; never a 500 anyway
            raise ApiError(400, "bad_json", "JSON nested too deeply") from None


class BoundedIntConverter(IntegerConverter):
    """``<int:x>`` with a ceiling: a larger number matches no route instead of overflowing
    the database driver."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_DB_INT)
        super().__init__(map, *args, **kwargs)


def install(app: Flask, *, max_body: int, max_upload: int) -> None:
    """Register the converter, JSON provider, body limits and headers on ``app``.

    Call before the blueprints are registered (the converter) and before ``init_auth``
    (the upload check must run before the CSRF check reads a form body).
    """
    app.url_map.converters["int"] = BoundedIntConverter
    app.json = BoundedJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = max_upload

    @app.before_request
    def _bound_body() -> None:
        upload = request.endpoint in UPLOAD_ENDPOINTS
        limit = max_upload if upload else BODY_LIMITS.get(request.endpoint or "", max_body)
        request.max_content_length = limit  # also cuts chunked bodies at the limit
        length = request.content_length
        if length is not None and length > limit:
            raise ApiError(413, "too_large", f"request bodies here are limited to {limit} bytes")
        if upload:
            _authorize_upload()

    @app.after_request
    def _headers(resp: Response) -> Response:
        for name, value in SECURITY_HEADERS.items():
            resp.headers.setdefault(name, value)
        if request.path.startswith("/api/") and "Cache-Control" not in resp.headers:
            resp.headers["Cache-Control"] = "no-store"
        return resp


def _authorize_upload() -> None:
    """The upload route's own role check, run before anything reads the (large) body."""
    from cloud.hub.context import hub
    from cloud.hub.http.auth import current_principal, role_at_least

    s = hub().request_session()
    principal = current_principal(s)
    s.commit()
    if principal is None:
        raise ApiError(401, "unauthorized", "log in or send 'Authorization: Bearer TOKEN'")
    if principal.kind == "device" or not role_at_least(principal.role, "operator"):
        raise ApiError(403, "forbidden", "uploading needs the operator role")
