"""Device registry, enrollment, telemetry and event routes of the API, plus the session
endpoints the web page logs in with."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, jsonify, request
from flask_wtf.csrf import generate_csrf
from sqlalchemy import select, update

from cloud.errors import ApiError
from cloud.hub.broker import DynsecError, control_for, issue_account, revoke
from cloud.hub.commands import command_public_pem
from cloud.hub.context import db, hub
from cloud.hub.http.auth import (
    current_principal,
    hash_token,
    login_session,
    logout_session,
    new_token,
    require,
    verify_login,
)
from cloud.hub.http.common import json_body
from cloud.hub.http.model_routes import get_model
from cloud.hub.http.shapes import device_detail_json, device_json, event_json
from cloud.hub.ingest import drift_store, telemetry_store
from cloud.hub.storage import Device, EnrollmentToken, EventRow
from edge.contract import DEVICE_ID_RE, check_device_id
from edge.errors import ContractError

bp = Blueprint("devices", __name__)

MAX_TAGS = 32
MAX_POINTS = 10_000
MAX_TS = 1e10  # unix seconds (year 2286): a query bound beyond is a client error
DRIFT_KINDS = ("feature", "channel", "mean", "output", "confidence")


def _device(device_id: str) -> Device:
    d = db().get(Device, device_id)
    if d is None:
        raise ApiError(404, "not_found", f"device {device_id!r} is unknown")
    return d


def _tags(value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_TAGS:
        raise ApiError(400, "invalid", f"'tags' must be a list of at most {MAX_TAGS} names")
    for t in value:
        if not isinstance(t, str) or not DEVICE_ID_RE.match(t):
            raise ApiError(
                400, "invalid", f"tag {t!r} must be 1-128 letters, digits, '.', '_', '-'"
            )
    return list(dict.fromkeys(value))


def _float_arg(name: str, default: float | None) -> float | None:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ApiError(400, "invalid", f"'{name}' must be unix seconds") from None
    if not 0.0 <= value <= MAX_TS:  # also refuses nan and +-inf
        raise ApiError(400, "invalid", f"'{name}' must be unix seconds between 0 and {MAX_TS:g}")
    return value


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid", f"'{name}' must be an integer") from None
    if not lo <= value <= hi:
        raise ApiError(400, "invalid", f"'{name}' must be between {lo} and {hi}")
    return value


LIST_COLUMNS = [
    getattr(Device, c)
    for c in ("id", "online", "tags", "enrolled", "model_name", "model_version", "model_runtime",
              "model_precision", "agent_version", "first_seen", "last_seen", "kpis", "kpis_ts")
]  # fmt: skip


@bp.get("/devices")
@require("viewer")
def list_devices() -> Any:
    # only the listed columns, as rows: no ORM objects, and no capabilities JSON to decode
    # (half the cost of this call with 500 devices, which the fleet page polls)
    rows = db().execute(select(*LIST_COLUMNS).order_by(Device.id)).all()
    tag = request.args.get("tag")
    model = request.args.get("model")
    version = request.args.get("version")
    out = []
    for d in rows:
        if tag and tag not in (d.tags or []):
            continue
        if model and d.model_name != model:
            continue
        if version and str(d.model_version) != version:
            continue
        out.append(device_json(d))
    return jsonify(out)


def _detail(d: Device) -> dict[str, Any]:
    """One device with what it reports drifting (feature, PSI, since when)."""
    return {**device_detail_json(d), "drift": drift_store.device_drift(db(), d.id)}


@bp.get("/devices/<device_id>")
@require("viewer")
def show_device(device_id: str) -> Any:
    return jsonify(_detail(_device(device_id)))


@bp.get("/drift")
@require("viewer")
def fleet_drift() -> Any:
    """Every drifting feature/signal of the fleet by device; ``?name=`` one feature,
    ``?kind=`` one kind (feature, channel, mean, output, confidence)."""
    name, kind = request.args.get("name"), request.args.get("kind")
    if name is not None and not 1 <= len(name) <= 128:
        raise ApiError(400, "invalid", "'name' must be 1-128 characters")
    if kind is not None and kind not in DRIFT_KINDS:
        raise ApiError(400, "invalid", f"'kind' must be one of {', '.join(DRIFT_KINDS)}")
    limit = _int_arg("limit", 1000, 1, MAX_POINTS)
    return jsonify(drift_store.fleet_drift(db(), name, kind, limit))


@bp.patch("/devices/<device_id>")
@require("operator")
def patch_device(device_id: str) -> Any:
    d = _device(device_id)
    body = json_body()
    unknown = sorted(set(body) - {"tags"})
    if unknown:
        raise ApiError(400, "invalid", f"only 'tags' can be changed, not {', '.join(unknown)}")
    if "tags" in body:
        d.tags = _tags(body["tags"])
    db().commit()
    return jsonify(_detail(d))


@bp.post("/enroll")
def enroll() -> Any:
    """Exchange a one-time enrollment token for this device's own credentials."""
    body = json_body()
    token, device_id = body.get("token"), body.get("device")
    try:  # new ids: what every broker and topic accepts (no '.': NATS maps '/' to '.')
        device_id = check_device_id(device_id)
    except ContractError as exc:
        raise ApiError(400, "invalid", f"'device': {exc}") from None
    if not isinstance(token, str) or not token:
        raise ApiError(400, "invalid", "'token' must be the enrollment token")
    now = time.time()
    row = db().scalar(
        select(EnrollmentToken).where(EnrollmentToken.token_hash == hash_token(token))
    )
    if row is None or row.used_at is not None or (row.expires is not None and row.expires < now):
        raise ApiError(401, "bad_token", "enrollment token is unknown, used or expired")
    existing = db().get(Device, device_id)
    if existing is not None and existing.enrolled and existing.revoked is None and not row.rebind:
        # the token stays unused: an admin can issue one with --rebind if the take-over is meant
        raise ApiError(
            409, "already_enrolled",
            f"device {device_id!r} is already enrolled; an admin must create an enrollment "
            "token with rebind to take it over",
        )  # fmt: skip
    # Claim the token in one conditional UPDATE: of two enrollments racing on one token only
    # one changes the row (PostgreSQL makes the other wait for it, then finds it used).
    # Uncommitted until the end, so a failure below leaves the token unused.
    claimed = db().execute(
        update(EnrollmentToken)
        .where(EnrollmentToken.id == row.id, EnrollmentToken.used_at.is_(None))
        .values(used_at=now, used_by=device_id)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        db().rollback()
        raise ApiError(401, "bad_token", "enrollment token is unknown, used or expired")
    # Every check that refuses the enrollment (e.g. re-binding) must come BEFORE this line:
    # it replaces the id's live broker account (kicking whoever uses it).
    mqtt_password, mqtt_secret = _broker_account(device_id)
    device = db().get(Device, device_id)
    if device is None:
        device = Device(id=device_id, tags=[], first_seen=now, capabilities={}, kpis={})
        db().add(device)
    credential = new_token("ekd")
    device.token_hash = hash_token(credential)
    device.mqtt_secret = mqtt_secret
    device.revoked = None
    device.enrolled = True
    device.tags = list(dict.fromkeys([*(device.tags or []), *row.tags]))
    db().commit()
    # the key its commands are signed with: the device trusts it from now on
    command_key = command_public_pem(db())
    return jsonify(
        {
            "device": device_id,
            "token": credential,
            "tags": device.tags,
            "command_key": command_key,
            "mqtt": {"username": device_id, "password": mqtt_password},
        }
    )


def _broker_account(device_id: str) -> tuple[str, dict[str, Any]]:
    """The device's new broker password and its hash to store, already live on a broker the
    hub manages. Runs before enrollment changes anything: a broker that cannot take the
    account fails the enrollment with 503 and the enrollment token stays unused."""
    try:
        return issue_account(device_id, control_for(hub().config, hub().db))
    except DynsecError as exc:
        db().rollback()
        raise ApiError(
            503, "broker_unavailable", f"the broker cannot create the device's account: {exc}"
        ) from None


@bp.post("/devices/<device_id>/revoke")
@require("admin")
def revoke_device(device_id: str) -> Any:
    """Cut the device's token and broker account at once (its connection is kicked)."""
    _device(device_id)
    p = current_principal(db())
    actor = f"{p.kind} {p.name}" if p is not None else "admin"
    result = revoke(db(), device_id, actor, lambda: control_for(hub().config, hub().db))
    d = _device(device_id)
    return jsonify({"device": device_id, "revoked": d.revoked, "broker": result.broker})


@bp.get("/devices/<device_id>/telemetry")
@require("viewer")
def device_telemetry(device_id: str) -> Any:
    _device(device_id)
    now = time.time()
    resolution = request.args.get("resolution", "raw")
    if resolution not in ("raw", "minute"):
        raise ApiError(400, "invalid", "'resolution' must be raw or minute")
    since = _float_arg("since", now - 3600.0)
    until = _float_arg("until", now)
    assert since is not None and until is not None
    if until < since:
        raise ApiError(400, "invalid", "'until' is before 'since'")
    limit = _int_arg("limit", 2000, 1, MAX_POINTS)
    points = telemetry_store.device_series(db(), device_id, since, until, resolution, limit)
    return jsonify({"device": device_id, "resolution": resolution, "points": points})


@bp.get("/models/<name>/<version>/telemetry")
@require("viewer")
def model_telemetry(name: str, version: str) -> Any:
    m = get_model(name, version)
    now = time.time()
    since = _float_arg("since", now - 3600.0)
    until = _float_arg("until", now)
    assert since is not None and until is not None
    if until < since:
        raise ApiError(400, "invalid", "'until' is before 'since'")
    points = telemetry_store.model_series(db(), m.name, m.version, since, until)
    summary = telemetry_store.model_summary(points)
    return jsonify({"name": m.name, "version": m.version, "summary": summary, "points": points})


@bp.get("/devices/<device_id>/events")
@require("viewer")
def device_events(device_id: str) -> Any:
    _device(device_id)
    limit = _int_arg("limit", 200, 1, 5000)
    since = _float_arg("since", None)
    q = select(EventRow).where(EventRow.device_id == device_id)
    if since is not None:
        q = q.where(EventRow.ts >= since)
    rows = db().scalars(q.order_by(EventRow.ts.desc(), EventRow.id.desc()).limit(limit))
    return jsonify([event_json(e) for e in rows])


# --------------------------------------------------------------------------- session


@bp.get("/session")
def whoami() -> Any:
    p = current_principal(db())
    user = None if p is None else {"name": p.name, "role": p.role, "kind": p.kind}
    return jsonify({"user": user, "csrf_token": generate_csrf()})


@bp.post("/session")
def login() -> Any:
    body = request.get_json(silent=True) if request.is_json else request.form.to_dict()
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "send username and password")
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise ApiError(400, "invalid", "send 'username' and 'password'")
    if not username or len(username) > 64:
        raise ApiError(400, "invalid", "'username' must be 1-64 characters")
    user = verify_login(db(), username, password)
    if user is None:
        raise ApiError(401, "bad_login", "wrong user name or password")
    login_session(user)
    return jsonify({"user": {"name": user.username, "role": user.role, "kind": "user"},
                    "csrf_token": generate_csrf()})  # fmt: skip


@bp.delete("/session")
def logout() -> Any:
    logout_session()
    return "", 204
