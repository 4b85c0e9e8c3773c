"""Who is calling: users (session login), API tokens and device tokens (Bearer).

Passwords are hashed with werkzeug (scrypt); tokens are long random strings, so their
sha256 is enough to store. Roles are ordered viewer < operator < admin. CSRF protection
(Flask-WTF) guards cookie-authenticated writes; Bearer-token calls carry no ambient
credentials, so they are exempt.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, g, request, session
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from cloud.errors import ApiError
from cloud.hub.storage import ROLES, ApiToken, Device, EnrollmentToken, User
from edge.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
csrf = CSRFProtect()
CSRF_EXEMPT_PATHS = ("/api/v1/enroll",)


@dataclass(frozen=True)
class Principal:
    kind: str  # user | token | device
    name: str
    role: str | None  # None for devices
    device_id: str | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def role_at_least(role: str | None, needed: str) -> bool:
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    return role


# --------------------------------------------------------------------------- account ops


def create_user(db: Session, username: str, password: str, role: str) -> User:
    check_role(role)
    if not username or len(username) > 64:
        raise ConfigError("user name must be 1-64 characters")
    if len(password) < 8:
        raise ConfigError("password must be at least 8 characters")
    if db.scalar(select(User).where(User.username == username)) is not None:
        raise ConfigError(f"user {username!r} already exists")
    user = User(
        username=username,
        password_hash=generate_password_hash(password),
        role=role,
        created=time.time(),
    )
    db.add(user)
    db.flush()
    return user


def create_api_token(db: Session, role: str, name: str = "", user_id: int | None = None) -> str:
    check_role(role)
    token = new_token("ekt")
    db.add(
        ApiToken(
            token_hash=hash_token(token), role=role, name=name, user_id=user_id, created=time.time()
        )
    )
    return token


def create_enrollment_token(
    db: Session, tags: list[str], ttl_s: float | None = 7 * 24 * 3600.0
) -> str:
    token = new_token("eke")
    now = time.time()
    db.add(
        EnrollmentToken(
            token_hash=hash_token(token),
            tags=list(tags),
            created=now,
            expires=now + ttl_s if ttl_s else None,
        )
    )
    return token


def verify_login(db: Session, username: str, password: str) -> User | None:
    user = db.scalar(select(User).where(User.username == username))
    if user is None or not check_password_hash(user.password_hash, password):
        return None
    return user


# --------------------------------------------------------------------------- requests


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def current_principal(db: Session) -> Principal | None:
    """Resolve the caller once per request (Bearer token first, then the session cookie)."""
    if "principal" in g:
        return cast(Principal | None, g.principal)
    principal: Principal | None = None
    token = _bearer()
    if token is not None:
        digest = hash_token(token)
        api = db.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
        if api is not None:
            api.last_used = time.time()
            principal = Principal("token", api.name or f"token-{api.id}", api.role)
        else:
            dev = db.scalar(select(Device).where(Device.token_hash == digest))
            if dev is not None:
                principal = Principal("device", dev.id, None, device_id=dev.id)
        if principal is None:
            raise ApiError(401, "unauthorized", "invalid bearer token")
    elif session.get("user_id") is not None:
        user = db.get(User, session["user_id"])
        if user is not None:
            principal = Principal("user", user.username, user.role)
    g.principal = principal
    return principal


def require(role: str, *, allow_device: bool = False) -> Callable[[F], F]:
    """Route decorator: 401 without credentials, 403 with too small a role."""

    def deco(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from cloud.hub.context import hub

            session_ = hub().request_session()
            principal = current_principal(session_)
            session_.commit()  # end the auth transaction: SQLite allows one writer at a time
            if principal is None:
                raise ApiError(401, "unauthorized", "log in or send 'Authorization: Bearer TOKEN'")
            if principal.kind == "device":
                if not allow_device:
                    raise ApiError(403, "forbidden", "device tokens may only download bundles")
            elif not role_at_least(principal.role, role):
                raise ApiError(403, "forbidden", f"this needs the {role} role")
            return fn(*args, **kwargs)

        return cast(F, wrapper)

    return deco


def login_session(user: User) -> None:
    """Start a browser session (the web page's login form calls this)."""
    session.clear()
    session["user_id"] = user.id
    session["username"] = user.username
    session.permanent = True


def logout_session() -> None:
    session.clear()


def init_auth(app: Flask) -> None:
    """CSRF for cookie-authenticated writes; Bearer calls and enrollment are exempt."""
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    csrf.init_app(app)

    @app.before_request
    def _csrf_guard() -> None:
        if request.method in ("GET", "HEAD", "OPTIONS") or _bearer() is not None:
            return
        if request.path in CSRF_EXEMPT_PATHS or app.config.get("WTF_CSRF_ENABLED") is False:
            return
        csrf.protect()
