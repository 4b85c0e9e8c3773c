"""Who is calling: users (session login), API tokens and device tokens (Bearer).

Passwords are hashed with werkzeug (scrypt); tokens are long random strings, so their
sha256 is enough to store. Roles are ordered viewer < operator < admin. CSRF protection
(Flask-WTF) guards cookie-authenticated writes; Bearer-token calls carry no ambient
credentials, so they are exempt.

Browser sessions live on the server (``WebSession``): the signed cookie carries only a
random session id, whose sha256 is the row's key, so logging out or changing the password
ends a session even for someone holding a copy of the cookie. Logins are throttled
(:mod:`cloud.hub.http.throttle`) and an unknown user name costs one password hash check,
like a known one, so timing does not tell which names exist.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Flask, g, has_request_context, request, session
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from cloud.errors import ApiError
from cloud.hub.http import throttle
from cloud.hub.storage import ROLES, ApiToken, Device, EnrollmentToken, User, WebSession
from edge.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])
csrf = CSRFProtect()
CSRF_EXEMPT_PATHS = ("/api/v1/enroll",)
# routes only a device token may call (never a cookie): without a token they answer 401
CSRF_EXEMPT_ENDPOINTS = frozenset({"api.samples.upload_samples"})
SESSION_MAX_AGE_S = 31 * 24 * 3600.0  # Flask's permanent session lifetime
SESSION_TOUCH_S = 60.0  # how stale ``WebSession.last_seen`` may get before it is written
TOKEN_TOUCH_S = 60.0  # how stale ``ApiToken.last_used`` may get before it is written
MAX_PASSWORD = 1024  # scrypt of a megabyte "password" would be a cheap denial of service
_DUMMY_HASH: list[str] = []  # checked against for unknown users (same cost as a real one)


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


def _check_password(password: str) -> None:
    if len(password) < 8 or len(password) > MAX_PASSWORD:
        raise ConfigError(f"password must be at least 8 (at most {MAX_PASSWORD}) characters")


def create_user(db: Session, username: str, password: str, role: str) -> User:
    check_role(role)
    if not username or len(username) > 64:
        raise ConfigError("user name must be 1-64 characters")
    _check_password(password)
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


def set_password(db: Session, user: User, password: str) -> int:
    """Change a password and end every session of that user; returns how many ended."""
    _check_password(password)
    user.password_hash = generate_password_hash(password)
    ended = db.query(WebSession).filter(WebSession.user_id == user.id).delete()
    db.flush()
    return int(ended)


def list_api_tokens(db: Session) -> list[dict[str, Any]]:
    """Every API token without its secret (only the sha256 is stored anyway)."""
    fields = ("id", "name", "role", "created", "last_used", "revoked")
    rows = db.scalars(select(ApiToken).order_by(ApiToken.id))
    return [{f: getattr(t, f) for f in fields} for t in rows]


def revoke_api_token(db: Session, token_id: int) -> ApiToken:
    """Refuse the token from now on (idempotent; the row stays for the audit trail)."""
    row = db.get(ApiToken, token_id)
    if row is None:
        raise ConfigError(f"API token {token_id} does not exist")
    if row.revoked is None:
        row.revoked = time.time()
    db.flush()
    return row


def create_enrollment_token(
    db: Session, tags: list[str], ttl_s: float | None = 7 * 24 * 3600.0, *, rebind: bool = False
) -> str:
    """``rebind``: the token may take over a device id that is already enrolled (the old
    credentials stop working); without it such an enrollment is refused."""
    token = new_token("eke")
    now = time.time()
    db.add(
        EnrollmentToken(
            token_hash=hash_token(token),
            tags=list(tags),
            created=now,
            expires=now + ttl_s if ttl_s else None,
            rebind=rebind,
        )
    )
    return token


def _dummy_hash() -> str:
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(generate_password_hash(secrets.token_urlsafe(16)))
    return _DUMMY_HASH[0]


def verify_login(
    db: Session, username: str, password: str, address: str | None = None
) -> User | None:
    """The user, or None for a wrong name or password; raises ``Throttled`` (429) while the
    name or the client address is locked. Failures are committed at once, so they count
    even when the request then fails, and in every hub process."""
    if address is None and has_request_context():
        address = request.remote_addr
    names = throttle.keys(username, address)
    throttle.check(db, names)
    user = db.scalar(select(User).where(User.username == username))
    too_long = len(password) > MAX_PASSWORD
    ok = check_password_hash(
        user.password_hash if user is not None else _dummy_hash(),
        password[:MAX_PASSWORD] if too_long else password,
    )
    if user is None or not ok or too_long:
        throttle.failed(db, names)
        db.commit()
        return None
    throttle.succeeded(db, username)
    db.commit()
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
        if api is not None and api.revoked is None:
            now = time.time()
            # touched at most every TOKEN_TOUCH_S: a fleet downloading with one token would
            # otherwise queue every request on the row lock of that one UPDATE
            if api.last_used is None or now - api.last_used > TOKEN_TOUCH_S:
                api.last_used = now
            principal = Principal("token", api.name or f"token-{api.id}", api.role)
        elif api is None:
            dev = db.scalar(select(Device).where(Device.token_hash == digest))
            if dev is not None and dev.revoked is None:
                principal = Principal("device", dev.id, None, device_id=dev.id)
        if principal is None:
            raise ApiError(401, "unauthorized", "invalid or revoked bearer token")
    else:
        user = _session_user(db)
        if user is not None:
            principal = Principal("user", user.username, user.role)
    g.principal = principal
    return principal


def _session_user(db: Session) -> User | None:
    """The user of the cookie's server-side session, if that session still exists."""
    sid = session.get("sid")
    if not isinstance(sid, str) or not sid:
        return None
    row = db.get(WebSession, hash_token(sid))
    now = time.time()
    if row is None or now - row.created > SESSION_MAX_AGE_S:
        return None
    if now - row.last_seen > SESSION_TOUCH_S:
        row.last_seen = now
    return db.get(User, row.user_id)


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
    """Start a browser session (the web page's login form calls this): a new row, and a
    new random id in the cookie (never the id of a session from before the login)."""
    from cloud.hub.context import db as request_db

    _end_session(request_db())
    sid = secrets.token_urlsafe(32)
    now = time.time()
    request_db().add(WebSession(id_hash=hash_token(sid), user_id=user.id, created=now,
                                last_seen=now))  # fmt: skip
    request_db().commit()
    session.clear()
    session["sid"] = sid
    session.permanent = True
    g.pop("principal", None)


def logout_session() -> None:
    """End the session on the server too: a copy of the cookie stops working."""
    from cloud.hub.context import db as request_db

    _end_session(request_db())
    request_db().commit()
    session.clear()
    g.pop("principal", None)


def _end_session(db: Session) -> None:
    sid = session.get("sid")
    if isinstance(sid, str) and sid:
        db.query(WebSession).filter(WebSession.id_hash == hash_token(sid)).delete()


def init_auth(app: Flask) -> None:
    """CSRF for cookie-authenticated writes; Bearer calls and enrollment are exempt."""
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    csrf.init_app(app)

    @app.before_request
    def _csrf_guard() -> None:
        if request.method in ("GET", "HEAD", "OPTIONS") or _bearer() is not None:
            return
        if request.path in CSRF_EXEMPT_PATHS or request.endpoint in CSRF_EXEMPT_ENDPOINTS:
            return
        if app.config.get("WTF_CSRF_ENABLED") is False:
            return
        csrf.protect()
