"""The leader among hub processes: the one that holds the ``scheduler`` lease runs the
rollout ticker, compaction, the staleness sweep and sample retention.

Elected through the lease row (cloud/hub/storage/leases.py), not a PostgreSQL advisory lock:
the row works on SQLite too, its holder is visible to every process (``GET /healthz`` names
the leader), and it expires by itself when the leader dies or hangs, whereas a session
advisory lock stays held by a paused process whose connection is still open.

Why two leaders never act at once:

* the lease is renewed on a thread of its own every ``ttl / 3``, so a long tick (a large
  fan-out) does not let it lapse;
* the database stamps and checks expiry with its own clock, so clock skew between hosts
  does not matter;
* this process believes it leads only until ``t0 + ttl * (1 - DRIFT_MARGIN)`` on its
  **monotonic** clock, where ``t0`` was read *before* the renewing statement was sent: the
  database's expiry is at least ``t0 + ttl``, so a process that was paused, or cut off from
  the database, stops acting as leader before anyone else can take the lease over.

What remains is a process paused *inside* a tick, between its check and its commit; the
rollout row lock makes that harmless (see docs/hub.md, "Several hub processes").
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from cloud.hub.storage import Database, leases

if TYPE_CHECKING:
    from cloud.hub.context import Hub

log = logging.getLogger(__name__)
SCHEDULER_LEASE = "scheduler"
DRIFT_MARGIN = 0.1  # share of the TTL kept back for clock-rate drift and scheduling jitter


def lease_ttl(tick_interval_s: float) -> float:
    """The scheduler lease's TTL: long enough to survive a few slow renewals, short enough
    for a follower to take over within ``4/3 * ttl`` (6.7 s at the default 1 s tick)."""
    return max(5.0, 5.0 * tick_interval_s)


class Leader:
    """Holds (or waits for) a lease on a renewal thread; ``is_leader`` is the answer."""

    def __init__(
        self,
        db: Database,
        ttl_s: float,
        *,
        name: str = SCHEDULER_LEASE,
        holder: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not ttl_s > 0:
            raise ValueError(f"lease TTL must be positive, not {ttl_s!r}")
        self.db, self.name, self.ttl_s = db, name, ttl_s
        self.holder = holder or leases.WORKER_ID
        self.renew_every = ttl_s / 3
        self._clock = clock
        self._deadline = 0.0  # monotonic time until which this process may lead
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None  # why the last renewal could not reach the DB

    @property
    def is_leader(self) -> bool:
        """True while this process may act as the leader (checked without the database)."""
        with self._lock:
            return self._clock() < self._deadline

    def renew(self) -> bool:
        """Take or renew the lease once; returns ``is_leader`` afterwards."""
        was = self.is_leader
        t0 = self._clock()  # before the statement: the DB's expiry is later than t0 + ttl
        try:
            got = leases.try_acquire(self.db, self.name, self.ttl_s, self.holder)
        except SQLAlchemyError as exc:
            # Unknown outcome: keep the deadline already earned (it lapses by itself).
            self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            log.warning("renewing the %s lease failed: %s", self.name, self.last_error)
            return self.is_leader
        self.last_error = None
        with self._lock:
            self._deadline = t0 + self.ttl_s * (1 - DRIFT_MARGIN) if got else 0.0
        now = self.is_leader
        if now != was:
            log.info("%s %s the %s lease", self.holder, "took" if now else "lost", self.name)
        return now

    def start(self) -> Leader:
        self._thread = threading.Thread(target=self._run, name="hub-leader", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.renew()
            except Exception:  # never let the renewal thread die
                log.exception("lease renewal failed; will retry")
            self._stop.wait(self.renew_every)

    def stop(self) -> None:
        """Stop renewing and hand the lease back, so a follower takes over at once."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        held = self.is_leader
        with self._lock:
            self._deadline = 0.0
        if held:
            try:
                leases.release(self.db, self.name, self.holder)
            except SQLAlchemyError as exc:
                log.warning("releasing the %s lease failed: %s", self.name, exc)


def leader_of(hub: Hub) -> Leader | None:
    """The hub's :class:`Leader` (None when its background workers are off: tests, CLI)."""
    return next((w for w in hub.workers if isinstance(w, Leader)), None)
