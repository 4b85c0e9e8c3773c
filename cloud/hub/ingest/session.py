"""The bridge's MQTT session identity: a client id that is stable across reconnects and hub
restarts, yet distinct between the hub processes sharing one database.

A persistent session (MQTT 3.1.1 ``clean_session=False``, MQTT 5 ``clean_start=False`` plus
a Session Expiry Interval) only helps if the hub comes back under the same client id: the
broker then kept its subscriptions and queued what arrived meanwhile. A random id per
process (paho's ``""``) left every outage's telemetry to nobody.

The id is ``mqtt_client_id`` when configured, else ``edgekit-hub-<tag>-<n>``: ``<tag>`` is
a random word made once per database (hub secret ``mqtt_client_tag``: two fleets, or two
test runs, on one broker never take over each other's sessions) and ``<n>`` the lowest
free slot, claimed with a database lease (``mqtt-client-<n>``) and renewed while the bridge
runs. A restarted hub takes slot 0 again and resumes slot 0's session; the second of two
processes takes slot 1. Ids use only ``[A-Za-z0-9_-]`` (NATS refuses dots) and stay within
MQTT 3.1.1's guaranteed 23 characters.

After ``kill -9`` the dead process's slot lease is still held for up to ``SLOT_TTL_S``; a
hub started meanwhile must not take slot 1 and leave slot 0's queue to nobody. So when a
lower slot is held, the new process watches it for one renewal period: a lease that is not
renewed belongs to a dead process, and the new one waits for it to expire and takes it.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError

from cloud.hub.storage import Database, leases, secrets

log = logging.getLogger("cloud.hub.ingest.bridge")
TAG_SECRET = "mqtt_client_tag"
SLOT_PREFIX = "mqtt-client-"
SLOT_TTL_S = 10.0
RENEW_S = 2.0  # a live holder renews this often, so a lease not renewed within 1.5x is dead
MAX_SLOTS = 100  # keeps ids at 23 characters at most
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def slot_name(n: int) -> str:
    return f"{SLOT_PREFIX}{n}"


def fleet_tag(db: Database) -> str:
    """The random word of this database's client ids (made on first use)."""
    with db.session() as s:
        return secrets.get_or_create(s, TAG_SECRET, lambda: uuid.uuid4().hex[:6])


def claim_slot(db: Database, holder: str, wait: Callable[[float], bool]) -> int:
    """The lowest slot ``holder`` can hold, preferring a lower one whose holder died.

    ``wait(seconds)`` sleeps (True: stop asked, return what is held)."""
    busy: dict[int, float] = {}
    for n in range(MAX_SLOTS):
        if leases.try_acquire(db, slot_name(n), SLOT_TTL_S, holder):
            break
        busy[n] = leases.holder_of(db, slot_name(n)).expires
    else:
        raise RuntimeError(f"all {MAX_SLOTS} MQTT client slots are held")
    if not busy or wait(RENEW_S * 1.5):
        return n
    leases.try_acquire(db, slot_name(n), SLOT_TTL_S, holder)  # renew ours meanwhile
    for k in sorted(busy):
        info = leases.holder_of(db, slot_name(k))
        if info.held and info.expires > busy[k]:
            continue  # renewed: a live process owns it
        log.info("MQTT client slot %d was not renewed (its hub died?); waiting to take it", k)
        while not leases.try_acquire(db, slot_name(k), SLOT_TTL_S, holder):
            if wait(0.5):
                return n
            leases.try_acquire(db, slot_name(n), SLOT_TTL_S, holder)
            if leases.holder_of(db, slot_name(k)).expires > busy[k]:
                break  # someone else took it first
        else:
            leases.release(db, slot_name(n), holder)
            return k
    return n


class ClientIdentity:
    """The bridge's client id; with no configured id, the slot lease behind it, renewed on
    a thread of its own until :meth:`release`."""

    def __init__(self, db: Database, holder: str, configured: str | None) -> None:
        self.db, self.holder = db, holder
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.slot: int | None = None
        self.tag = ""
        if configured is not None:
            self.client_id = configured
            return
        self.tag = fleet_tag(db)
        self.slot = claim_slot(db, holder, self._stop.wait)
        self.client_id = self.id_for(self.slot)
        self._thread = threading.Thread(target=self._renew, name="hub-mqtt-slot", daemon=True)
        self._thread.start()

    def id_for(self, slot: int) -> str:
        return f"edgekit-hub-{self.tag}-{slot}"

    def _renew(self) -> None:
        assert self.slot is not None
        name = slot_name(self.slot)
        lost = False
        while not self._stop.wait(RENEW_S):
            try:
                held = leases.try_acquire(self.db, name, SLOT_TTL_S, self.holder)
            except SQLAlchemyError:
                log.warning("MQTT client slot lease not renewed", exc_info=True)
                continue
            if not held and not lost:
                log.error(
                    "another hub took MQTT client slot %d (this one stalled past %.0f s): "
                    "both now use client id %s", self.slot, SLOT_TTL_S, self.client_id,
                )  # fmt: skip
            lost = not held

    def release(self) -> None:
        """A clean stop: the next hub to start may take the slot (and its session) at once."""
        self._stop.set()
        if self._thread is None or self.slot is None:
            return
        self._thread.join(timeout=5)
        try:
            leases.release(self.db, slot_name(self.slot), self.holder)
        except SQLAlchemyError:
            log.warning("MQTT client slot lease not released", exc_info=True)
