"""The hub's own secrets, kept in the ``hub_secrets`` table: created once on first use and
then read back by every hub process and CLI command pointed at the same database."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.hub.storage.tables import HubSecret


def get_or_create(session: Session, name: str, make: Callable[[], str]) -> str:
    """The secret ``name``; made with ``make()`` and committed when there is none yet.

    Two processes racing on the first use both insert; the loser's insert fails on the
    primary key and it reads the winner's value, so every process ends with the same one.
    """
    row = session.get(HubSecret, name)
    if row is not None:
        return row.value
    value = make()
    session.add(HubSecret(name=name, value=value, created=time.time()))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        row = session.get(HubSecret, name)
        if row is None:  # pragma: no cover - the winner's row vanished between the two
            raise
        return row.value
    return value


def get(session: Session, name: str) -> str | None:
    row = session.get(HubSecret, name)
    return None if row is None else row.value
