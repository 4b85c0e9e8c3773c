"""Account routes: API tokens (list, create, revoke; admin only) and password changes.

A token's secret is shown once, when it is created; listing never returns it (only its
sha256 is stored). A password change ends every browser session of that user.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import select

from cloud.errors import ApiError
from cloud.hub.context import db
from cloud.hub.http.auth import (
    check_role,
    create_api_token,
    current_principal,
    hash_token,
    list_api_tokens,
    require,
    revoke_api_token,
    role_at_least,
    set_password,
    verify_login,
)
from cloud.hub.http.common import json_body
from cloud.hub.storage import ApiToken, User
from edge.errors import ConfigError

bp = Blueprint("accounts", __name__)


@bp.get("/tokens")
@require("admin")
def list_tokens() -> Any:
    return jsonify(list_api_tokens(db()))


@bp.post("/tokens")
@require("admin")
def create_token() -> Any:
    body = json_body()
    role, name = body.get("role"), body.get("name", "")
    if not isinstance(name, str) or len(name) > 128:
        raise ApiError(400, "invalid", "'name' must be a string of at most 128 characters")
    if not isinstance(role, str):
        raise ApiError(400, "invalid", "'role' must be viewer, operator or admin")
    try:
        check_role(role)
    except ConfigError as exc:
        raise ApiError(400, "invalid", str(exc)) from None
    secret = create_api_token(db(), role, name)
    db().flush()
    row = db().scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(secret)))
    db().commit()
    assert row is not None
    return jsonify({"id": row.id, "name": name, "role": role, "token": secret}), 201


@bp.post("/tokens/<int:token_id>/revoke")
@require("admin")
def revoke_token(token_id: int) -> Any:
    try:
        row = revoke_api_token(db(), token_id)
    except ConfigError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    db().commit()
    return jsonify({"id": row.id, "name": row.name, "role": row.role, "revoked": row.revoked})


@bp.put("/users/<username>/password")
@require("viewer")
def change_password(username: str) -> Any:
    """An admin sets anyone's password; a user changes their own with the current one."""
    p = current_principal(db())
    assert p is not None  # require() let only a user or an API token through
    body = json_body()
    new = body.get("password")
    if not isinstance(new, str):
        raise ApiError(400, "invalid", "'password' must be the new password")
    user = db().scalar(select(User).where(User.username == username))
    own = p.kind == "user" and p.name == username
    if not own and not role_at_least(p.role, "admin"):
        raise ApiError(403, "forbidden", "only an admin may set another user's password")
    if user is None:
        raise ApiError(404, "not_found", f"user {username!r} does not exist")
    if own and not role_at_least(p.role, "admin"):
        current = body.get("current_password")
        if not isinstance(current, str) or verify_login(db(), username, current) is None:
            raise ApiError(403, "bad_login", "'current_password' is wrong")
    try:
        ended = set_password(db(), user, new)
    except ConfigError as exc:
        raise ApiError(400, "invalid", str(exc)) from None
    db().commit()
    return jsonify({"user": username, "sessions_ended": ended})
