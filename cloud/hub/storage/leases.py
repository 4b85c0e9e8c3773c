"""Database leases: exactly one hub worker runs a singleton job (rollout ticker, compaction,
or the MQTT consumer when shared subscriptions are unavailable)."""

from __future__ import annotations

import os
import socket
import time
import uuid

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from cloud.hub.storage.db import Database
from cloud.hub.storage.tables import Lease

WORKER_ID = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def try_acquire(db: Database, name: str, ttl_s: float, holder: str = WORKER_ID) -> bool:
    """Take or renew the lease; True while this holder owns it."""
    now = time.time()
    with db.session() as s:
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
            s.add(Lease(name=name, holder=holder, expires=now + ttl_s))
        return True
    except IntegrityError:  # another worker inserted it first
        return False


def release(db: Database, name: str, holder: str = WORKER_ID) -> None:
    with db.session() as s:
        s.execute(update(Lease).where(Lease.name == name, Lease.holder == holder).values(expires=0))
