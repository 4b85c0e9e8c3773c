"""``PUT /api/v1/devices/<id>/capture``: switch a device's capture on or off and tune it.

The body is a capture policy object (some or all keys of the agent config key ``capture``,
docs/agent.md "Capture"). It is checked here against the same rules and remote limits the
agent applies (so a typo is a 400 now, not a refused command later), sent as a signed
``config`` command ``{"capture": body}`` (the agent merges it into its policy; ``next`` is
a one-shot request), and kept on the device row (``capture``: the keys sent so far, who
sent them and when). What the device then runs shows in its telemetry's ``capture`` block.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from flask import Blueprint, jsonify

from cloud.errors import ApiError
from cloud.hub import commands
from cloud.hub.context import db, hub
from cloud.hub.http.auth import require
from cloud.hub.http.common import actor, json_body
from cloud.hub.storage import Device
from edge.agent.remote_config import out_of_range
from edge.capture import CapturePolicy
from edge.contract import Command
from edge.errors import ConfigError

bp = Blueprint("capture", __name__)


@bp.put("/devices/<device_id>/capture")
@require("operator")
def set_capture(device_id: str) -> Any:
    body = json_body()
    if not body:
        raise ApiError(400, "invalid", 'send at least one capture key, e.g. {"enabled": true}')
    try:
        merged = CapturePolicy().merged(body)
    except ConfigError as exc:
        raise ApiError(400, "invalid", str(exc)) from None
    why = out_of_range("capture", merged, body)
    if why is not None:
        raise ApiError(400, "invalid", why)
    device = db().get(Device, device_id)
    if device is None:
        raise ApiError(404, "not_found", f"device {device_id!r} is unknown")
    if device.revoked is not None:
        raise ApiError(409, "revoked", f"device {device_id!r} is revoked")
    publisher = hub().service.publisher
    if publisher is None:
        raise ApiError(503, "broker_unavailable", "the hub has no broker to send commands on")
    now = time.time()
    cfg = hub().config
    cmd = commands.sign(db(), Command(
        id=f"capture-{uuid.uuid4().hex[:12]}", kind="config", ts=now,
        expires=now + min(cfg.command_ttl_s, commands.MAX_TTL_S), device=device_id,
        nonce=commands.new_nonce(), config={"capture": dict(body)},
    ))  # fmt: skip
    try:
        publisher(device_id, cmd)
    except Exception as exc:  # the broker refused it: say so, change nothing
        db().rollback()
        raise ApiError(503, "broker_unavailable", f"the command was not sent: {exc}") from None
    previous = dict((device.capture or {}).get("policy") or {})
    policy = {**previous, **{k: v for k, v in body.items() if k != "next"}}
    device.capture = {
        "policy": policy,
        "requested": body.get("next"),
        "command": cmd.id,
        "by": actor(),
        "at": now,
    }
    db().commit()
    return jsonify({"device": device_id, "command": cmd.id, "capture": device.capture})
