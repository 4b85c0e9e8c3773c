"""Device accounts on the broker over their lifetime: issued at enrollment, cut at
revocation, and reconciled when the hub (re)connects, so a revocation made while the broker
was unreachable still takes effect.

The database is the source of truth: ``Device.mqtt_secret`` (a PBKDF2 hash) and
``Device.revoked``. With a dynsec-managed broker every change is also applied on the
running broker; with an unmanaged one (anonymous, or the demo's embedded broker that reads
the database itself) the database change is all there is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from cloud.hub.broker.credentials import HUB_USERNAME, hash_password, new_password
from cloud.hub.broker.dynsec import DynsecControl, DynsecError
from cloud.hub.storage import Device, EventRow, HubSecret

log = logging.getLogger(__name__)
BROKER_URL_SETTING = "mqtt_broker_url"  # where hubs last reached the managed broker
ControlFactory = Callable[[], DynsecControl | None]


@dataclass(frozen=True)
class Revocation:
    device: str
    broker: str  # removed | absent | not managed | unreachable: <why>


def issue_account(device_id: str, control: DynsecControl | None) -> tuple[str, dict[str, Any]]:
    """A new broker password for ``device_id`` and the hash to store on its row, created on
    the managed broker first (DynsecError when it cannot be). Replacing an existing account
    disconnects whoever used the old one."""
    password = new_password()
    if control is not None:
        with control:
            control.put_device(device_id, password)
    return password, hash_password(password)


def revoke(session: Session, device_id: str, actor: str, control: ControlFactory) -> Revocation:
    """Cut ``device_id``'s HTTP token and broker account (committed first, so the token is
    dead even when the broker is down; the next reconcile removes the account then), and
    record who did it in the device's timeline."""
    dev = session.get(Device, device_id)
    if dev is None:
        raise LookupError(device_id)
    now = time.time()
    dev.token_hash = None
    dev.mqtt_secret = None
    dev.revoked = now
    dev.enrolled = False
    dev.online = False  # the broker kicks it without its will, so no offline status follows
    session.commit()
    try:
        ctl = control()
        if ctl is None:
            outcome = "not managed"
        else:
            with ctl:
                outcome = "removed" if ctl.remove_device(device_id) else "absent"
    except DynsecError as exc:
        log.warning("device %s revoked; broker account not removed yet: %s", device_id, exc)
        outcome = f"unreachable: {exc}"
    session.add(EventRow(
        device_id=device_id, ts=now, seq=0, boot=None, kind="alert", step="revoked",
        message=f"revoked by {actor}: device token and broker account cut",
        rollout=None, command=None, version=None, detail={"actor": actor, "broker": outcome},
    ))  # fmt: skip
    session.commit()
    log.warning("device %s revoked by %s (broker: %s)", device_id, actor, outcome)
    return Revocation(device_id, outcome)


def reconcile(session: Session, control: DynsecControl) -> list[str]:
    """Delete the broker clients of devices the database holds as revoked; returns them.

    Only revoked devices: a client the database does not know yet may be an enrollment in
    flight (its account is created on the broker before the enrollment commits). Each row is
    read again just before its client is deleted, so a device re-enrolled meanwhile keeps
    its new account."""
    removed: list[str] = []
    for client in control.clients():
        name = client["username"]
        if name == HUB_USERNAME:
            continue
        session.expire_all()
        dev = session.get(Device, name)
        if dev is not None and dev.revoked is not None:
            control.remove_device(name)
            removed.append(name)
    if removed:
        log.warning("removed broker accounts of revoked devices: %s", ", ".join(removed))
    return removed


def remember_broker_url(session: Session, url: str) -> None:
    """Record the managed broker's URL, so ``edgekit hub revoke-device`` reaches it too."""
    row = session.get(HubSecret, BROKER_URL_SETTING)
    if row is None:
        session.add(HubSecret(name=BROKER_URL_SETTING, value=url, created=time.time()))
    elif row.value != url:
        row.value = url
    session.commit()


def known_broker_url(session: Session) -> str | None:
    row = session.get(HubSecret, BROKER_URL_SETTING)
    return None if row is None else row.value
