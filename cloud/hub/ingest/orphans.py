"""Sessions of hubs that are gone: drained by a live hub, then ended.

A persistent session outlives its hub. With shared subscriptions the broker (Mosquitto, at
least) keeps handing a share of the telemetry to a member whose session is merely offline,
and every session keeps a direct ``status`` subscription: a hub that was killed, or scaled
away, would hold its share until the session expires (then it is lost). So every live hub
looks for client slots nobody holds (:mod:`cloud.hub.ingest.session`); one takes the slot's
lease, resumes that session with a Session Expiry of 0 (3.1.1: then once more with a clean
session), unsubscribes it, stores and acknowledges what the broker had queued for it, and
disconnects, which ends it: from then on the broker gives everything to the live members.
A restarted hub that takes the slot later simply starts a new session.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import select

from cloud.hub.broker import BrokerSettings
from cloud.hub.ingest.session import SLOT_PREFIX, SLOT_TTL_S
from cloud.hub.storage import Database, leases
from cloud.hub.storage.tables import Lease

log = logging.getLogger("cloud.hub.ingest.bridge")
DRAINED = "drained"  # the holder a drained slot is left with (its session is gone)
IDLE_S = 1.0  # nothing more queued once the session is quiet this long


def orphan_slots(db: Database) -> list[str]:
    """Slot leases nobody holds whose session was not drained yet."""
    with db.session() as s:
        rows = s.execute(
            select(Lease.name, Lease.holder, Lease.expires, leases.db_now(db)).where(
                Lease.name.like(f"{SLOT_PREFIX}%")
            )
        ).all()
    return [name for name, holder, expires, now in rows if expires <= now and holder != DRAINED]


def drain(
    settings: BrokerSettings,
    endpoint: tuple[str, int],
    client_id: str,
    protocol: mqtt.MQTTProtocolVersion,
    store: Callable[[list[tuple[str, bytes]]], object],
    filters: list[str],
) -> int:
    """Resume ``client_id``'s session, store what it had queued, end it; messages stored."""
    got: list[tuple[str, bytes, int]] = []
    ready = threading.Event()
    present: list[bool] = []
    v5 = protocol == mqtt.MQTTv5
    c = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol,
        clean_session=None if v5 else False, manual_ack=True,
    )  # fmt: skip
    settings.apply(c)
    c.on_message = lambda _c, _u, m: got.append((m.topic, bytes(m.payload), m.mid * (m.qos > 0)))

    def on_connect(_c: mqtt.Client, _u: object, flags: object, rc: object, _p: object) -> None:
        present.append(bool(getattr(flags, "session_present", False)))
        ready.set()

    c.on_connect = on_connect
    props = None
    if v5:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0  # the session ends with this connection
    c.connect(*endpoint, keepalive=30, clean_start=False, properties=props)
    c.loop_start()
    stored = 0
    try:
        if not ready.wait(10) or not present[0]:
            return 0
        c.unsubscribe(filters)
        quiet_since, seen = time.monotonic(), 0
        while time.monotonic() - quiet_since < IDLE_S:
            time.sleep(0.1)
            if len(got) != seen:
                seen, quiet_since = len(got), time.monotonic()
                batch = got[:seen]
                store([(t, p) for t, p, _m in batch])
                for _t, _p, mid in batch:
                    if mid:
                        c.ack(mid, 1)
                del got[:seen]
                stored += seen
                seen = 0
    finally:
        c.disconnect()
        c.loop_stop()
    if not v5:  # 3.1.1 ends a session only by connecting with a clean one
        end = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=protocol)
        settings.apply(end)
        end.connect(*endpoint, keepalive=30)
        end.loop_start()
        end.disconnect()
        end.loop_stop()
    return stored


def adopt_orphans(
    db: Database,
    holder: str,
    id_for: Callable[[int], str],
    run: Callable[[str], int],
) -> None:
    """Drain every orphaned slot this hub can take (``run(client_id)`` drains one)."""
    for name in orphan_slots(db):
        if not leases.try_acquire(db, name, SLOT_TTL_S, holder):
            continue
        client_id = id_for(int(name.removeprefix(SLOT_PREFIX)))
        try:
            n = run(client_id)
            log.info("ended the session of gone hub %s (%d queued messages stored)", client_id, n)
        except (OSError, ValueError, RuntimeError) as exc:
            log.warning("could not drain the session of gone hub %s: %s", client_id, exc)
            leases.release(db, name, holder)
            continue
        leases.release(db, name, holder)
        leases.try_acquire(db, name, 0.001, DRAINED)
