"""Database leases: exactly one hub worker runs a singleton job (rollout ticker, compaction,
or the MQTT consumer when shared subscriptions are unavailable).

Expiry is stamped and compared with the **database's** clock, never a worker's: hub
processes on several hosts may disagree about the time, and a worker whose clock runs ahead
would otherwise see the leader's lease as expired and take it while the leader still holds
it. One clock (the server's) makes "expired" mean the same to every worker.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from cloud.hub.storage.db import Database
from cloud.hub.storage.tables import Lease

WORKER_ID = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class LeaseInfo:
    """Who holds a lease, as the database sees it now (``now`` is the database's clock)."""

    name: str
    holder: str | None
    expires: float
    now: float

    @property
    def held(self) -> bool:
        return self.holder is not None and self.expires > self.now


def db_now(db: Database) -> ColumnElement[Any]:
    """The database server's wall clock in Unix seconds, as an SQL expression (the wall
    clock at execution, not the transaction start: a lease stamped late in a long
    transaction must not be back-dated)."""
    if db.is_sqlite:
        return (func.julianday("now") - literal(2440587.5)) * literal(86400.0)
    return func.extract("epoch", func.clock_timestamp())


def try_acquire(db: Database, name: str, ttl_s: float, holder: str = WORKER_ID) -> bool:
    """Take or renew the lease; True while this holder owns it (until ``ttl_s`` seconds
    after this call by the database's clock)."""
    if not ttl_s > 0:
        raise ValueError(f"lease TTL must be positive, not {ttl_s!r}")
    now = db_now(db)
    with db.session() as s:
        # One UPDATE decides: two workers racing for an expired lease both target the row;
        # PostgreSQL re-checks the WHERE on the row the first one wrote, so the second
        # matches nothing (SQLite serialises the writers).
        res = s.execute(
            update(Lease)
            .where(Lease.name == name, (Lease.holder == holder) | (Lease.expires < now))
            .values(holder=holder, expires=now + ttl_s)
        )
        if (getattr(res, "rowcount", 0) or 0) > 0:
            return True
        if s.get(Lease, name) is not None:
            return False
    try:
        with db.session() as s:
            s.execute(insert(Lease).values(name=name, holder=holder, expires=now + ttl_s))
        return True
    except IntegrityError:  # another worker inserted it first
        return False


def holder_of(db: Database, name: str) -> LeaseInfo:
    """Who holds ``name`` now (``holder`` None when no worker ever took it)."""
    with db.session() as s:
        row = s.execute(select(Lease.holder, Lease.expires, db_now(db)).where(Lease.name == name))
        got = row.first()
        if got is None:
            now = s.scalar(select(db_now(db)))
            return LeaseInfo(name, None, 0.0, float(now or 0.0))
        return LeaseInfo(name, got[0], float(got[1]), float(got[2]))


def release(db: Database, name: str, holder: str = WORKER_ID) -> None:
    """Give the lease up at once (a clean shutdown), so the next worker need not wait."""
    with db.session() as s:
        s.execute(update(Lease).where(Lease.name == name, Lease.holder == holder).values(expires=0))
