"""Login throttling: failed logins counted per ``user:NAME`` and per ``addr:IP`` in the
database (``LoginFailure``), so every hub process of one fleet sees the same counts.

After ``MAX_FAILURES`` failures inside ``WINDOW_S`` a key is locked for ``LOCK_S`` (doubling
with each further failure up to ``MAX_LOCK_S``); a locked key is answered 429 with
``Retry-After`` before any password is checked. A successful login clears the user's key
(not the address's: one address guessing many accounts stays throttled).
"""

from __future__ import annotations

import math
import time

from sqlalchemy.orm import Session

from cloud.errors import ApiError
from cloud.hub.storage import LoginFailure

MAX_FAILURES = 5
WINDOW_S = 15 * 60.0
LOCK_S = 30.0
MAX_LOCK_S = 15 * 60.0
# an address tries on behalf of many users (a NAT, a proxy): give it more room
ADDRESS_FACTOR = 4


class Throttled(ApiError):
    """429 with how long to wait (the error handler turns it into ``Retry-After``)."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(
            429, "throttled", f"too many failed logins: try again in {self.retry_after} s"
        )


def keys(username: str, address: str | None) -> list[str]:
    out = [f"user:{username[:180]}"]
    if address:
        out.append(f"addr:{address[:180]}")
    return out


def _limit(key: str) -> int:
    return MAX_FAILURES * (ADDRESS_FACTOR if key.startswith("addr:") else 1)


def check(db: Session, names: list[str], now: float | None = None) -> None:
    """Raise :class:`Throttled` when any key is locked right now."""
    now = time.time() if now is None else now
    wait = 0.0
    for key in names:
        row = db.get(LoginFailure, key)
        if row is not None and row.locked_until is not None and row.locked_until > now:
            wait = max(wait, row.locked_until - now)
    if wait > 0:
        raise Throttled(wait)


def failed(db: Session, names: list[str], now: float | None = None) -> None:
    """Count one failure on every key; lock those that reached their limit."""
    now = time.time() if now is None else now
    for key in names:
        row = db.get(LoginFailure, key)
        if row is None or (now - row.first > WINDOW_S and not _locked(row, now)):
            if row is None:
                row = LoginFailure(key=key, failures=0, first=now, locked_until=None)
                db.add(row)
            row.failures, row.first, row.locked_until = 0, now, None
        row.failures += 1
        over = row.failures - _limit(key)
        if over >= 0:
            row.locked_until = now + min(MAX_LOCK_S, LOCK_S * 2.0 ** min(over, 16))
    db.flush()


def succeeded(db: Session, username: str) -> None:
    row = db.get(LoginFailure, keys(username, None)[0])
    if row is not None:
        db.delete(row)
        db.flush()


def _locked(row: LoginFailure, now: float) -> bool:
    return row.locked_until is not None and row.locked_until > now
