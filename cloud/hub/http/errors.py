"""One JSON error shape for every failure: ``{"error": {"code", "message"}}``.

Handlers turn every bad input into a 4xx and any bug into a logged 500 with the same shape,
so API clients never parse HTML.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from cloud.errors import ApiError
from cloud.hub.http.throttle import Throttled
from edge.errors import ContractError, EdgekitError

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify({"error": {"code": code, "message": message}}), status


def _wants_json() -> bool:
    if request.path.startswith("/api/") or request.path == "/metrics":
        return True
    return request.accept_mimetypes.best == "application/json"


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Any:
        return error_response(exc.status, exc.code, exc.message)

    @app.errorhandler(Throttled)
    def _throttled(exc: Throttled) -> Any:
        resp, status = error_response(exc.status, exc.code, exc.message)
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp, status

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> Any:
        return error_response(400, "csrf", exc.description or "CSRF token missing or invalid")

    @app.errorhandler(ContractError)
    def _contract(exc: ContractError) -> Any:
        return error_response(400, "invalid", str(exc))

    @app.errorhandler(EdgekitError)
    def _edgekit(exc: EdgekitError) -> Any:
        return error_response(400, "invalid", str(exc))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        if not _wants_json():
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _bug(exc: Exception) -> Any:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal", "internal error; see the hub log")
