"""``GET /healthz``: is this hub process fit to take requests, and is it the leader?

For load balancers and orchestrators: no auth, one small query (the ``scheduler`` lease
row, which also proves the database answers), never cached. 200 ``"status": "ok"`` while
the database answers, 503 ``"status": "unavailable"`` when it does not (every route needs
it). A disconnected broker is reported but still 200: the API and the page keep working and
the bridge reconnects by itself.

``ingest`` says whether this process stores device messages: ``shared`` (its MQTT 5 shared
subscription is acknowledged), ``lease`` (it holds the consumer lease of a 3.1.1 broker),
``standby`` (another process holds it), ``starting`` (not subscribed yet) or ``none``.

``leader`` is whether *this* process runs the rollout ticker and the other singletons now;
``leader_worker`` names the process that holds the lease according to the database, so
any process answers "who leads?" (``null`` while the lease has lapsed).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Response, jsonify
from sqlalchemy.exc import SQLAlchemyError

from cloud.hub.context import hub
from cloud.hub.leader import SCHEDULER_LEASE, leader_of
from cloud.hub.storage import leases

if TYPE_CHECKING:
    from cloud.hub.ingest import MqttBridge

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


def health() -> tuple[dict[str, Any], int]:
    """The body and status code of ``/healthz`` for the current app."""
    state = hub()
    leader = leader_of(state)
    bridge = state.bridge
    body: dict[str, Any] = {
        "status": "ok",
        "leader": leader is not None and leader.is_leader,
        "worker": leader.holder if leader is not None else leases.WORKER_ID,
        "leader_worker": None,
        "db": "ok",
        "broker": "none"
        if bridge is None
        else ("connected" if bridge.connected.is_set() else "disconnected"),
        "ingest": _ingest(bridge),
    }
    try:
        info = leases.holder_of(state.db, SCHEDULER_LEASE)
    except SQLAlchemyError as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        log.warning("health check: database unreachable: %s", why)
        # Without the database this process can neither serve nor lead.
        body.update(status="unavailable", db="unreachable", leader=False)
        return body, 503
    body["leader_worker"] = info.holder if info.held else None
    return body, 200


def _ingest(bridge: MqttBridge | None) -> str:
    if bridge is None:
        return "none"
    if bridge.mode == "lease" and not bridge.consuming:
        return "standby"
    return bridge.mode if bridge.subscribed.is_set() else "starting"


@bp.get("/healthz")
def healthz() -> tuple[Response, int, dict[str, str]]:
    body, status = health()
    return jsonify(body), status, {"Cache-Control": "no-store"}
