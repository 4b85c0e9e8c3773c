"""Authentication and topic access for the embedded demo broker (amqtt plugins).

The demo broker is not managed over Mosquitto's dynamic security; it reads the hub's
database instead, so an enrollment or a revocation applies at the next login: a device
logs in as its id with the password enrollment gave it (checked against
``Device.mqtt_secret``, refused once revoked), the hub with its account (a password kept in
``hub_secrets``). Anonymous clients are refused. Each account may then use exactly the
topics :func:`cloud.hub.broker.device_acls` / :func:`hub_acls` give it, the same lists the
generated Mosquitto configuration holds.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from dataclasses import dataclass
from typing import Any

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session as MqttSession

from cloud.hub.broker import (
    HUB_PASSWORD_SECRET,
    HUB_USERNAME,
    check_password,
    device_acls,
    hub_acls,
)
from cloud.hub.storage import Database, Device, secrets

log = logging.getLogger("cloud.demo.broker")
DEMO_HUB_USERNAME = "edgekit-demo-hub"  # not HUB_USERNAME: this broker has no dynsec to drive
DEMO_HUB_SECRET = "demo_mqtt_hub_password"
# amqtt's actions -> the dynamic-security ACL type that grants them
ACL_TYPES = {
    Action.PUBLISH: "publishClientSend",
    Action.SUBSCRIBE: "subscribePattern",
    Action.RECEIVE: "publishClientReceive",
}

_databases: dict[str, Database] = {}


def _db(url: str) -> Database:
    """One engine per URL for the broker process, made at the first login (the demo starts
    the broker before the hub creates its database)."""
    if url not in _databases:
        _databases[url] = Database(url)
    return _databases[url]


def hub_accounts(db: Database) -> dict[str, str]:
    """username -> password of the hub accounts the database holds."""
    with db.session() as s:
        found = {DEMO_HUB_USERNAME: secrets.get(s, DEMO_HUB_SECRET),
                 HUB_USERNAME: secrets.get(s, HUB_PASSWORD_SECRET)}  # fmt: skip
    return {k: v for k, v in found.items() if v is not None}


def login_ok(db: Database, username: str | None, password: str | None) -> tuple[bool, str]:
    """Whether this login may connect, and why (for the broker's log)."""
    if not username:
        return False, "anonymous clients are refused"
    if password is None:
        return False, f"{username}: no password"
    hubs = hub_accounts(db)
    if username in hubs:
        ok = hmac.compare_digest(hubs[username].encode(), password.encode())
        return ok, f"{username}: {'hub account' if ok else 'wrong password'}"
    with db.session() as s:
        dev = s.get(Device, username)
        if dev is None:
            return False, f"{username}: no such device"
        if dev.revoked is not None:
            return False, f"{username}: revoked"
        if not dev.enrolled or dev.mqtt_secret is None:
            return False, f"{username}: no broker account"
        ok = check_password(dev.mqtt_secret, password)
    return ok, f"{username}: {'device account' if ok else 'wrong password'}"


def topic_matches(requested: str, allowed: str) -> bool:
    """``requested`` (a topic, or a filter being subscribed) is covered by ``allowed``: a
    ``+`` in ``allowed`` covers one level (also a ``+`` asked for), ``#`` the rest."""
    req, allow = requested.split("/"), allowed.split("/")
    for i, a in enumerate(allow):
        if a == "#":
            return True
        if i >= len(req) or (a != "+" and a != req[i]):
            return False
    return len(req) == len(allow)


def allowed(username: str | None, hubs: set[str], topic: str, action: Action) -> bool:
    if not username:
        return False
    acls = hub_acls() if username in hubs else device_acls(username)
    kind = ACL_TYPES.get(action)
    return any(k == kind and topic_matches(topic, t) for k, t in acls)


class DatabaseAuthPlugin(BaseAuthPlugin):
    """Logins checked against the hub's database (see the module docstring)."""

    @dataclass
    class Config:
        db_url: str = ""

    async def authenticate(self, *, session: MqttSession) -> bool | None:
        url = self._get_config_option("db_url", "")
        try:
            ok, why = await asyncio.to_thread(
                login_ok, _db(url), session.username, session.password
            )
        except Exception as exc:  # a database problem refuses the login, never crashes
            ok, why = False, f"cannot check the login: {exc}"
        log.log(logging.INFO if ok else logging.WARNING, "login %s: %s",
                "accepted" if ok else "refused", why)  # fmt: skip
        return ok


class AclTopicPlugin(BaseTopicPlugin):
    """Publish, subscribe and receive only on the topics of the account's ACL."""

    @dataclass
    class Config:
        db_url: str = ""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self._hubs: set[str] | None = None

    async def topic_filtering(
        self,
        *,
        session: MqttSession | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool | None:
        if session is None or topic is None or action is None:
            return False
        if self._hubs is None or session.username not in self._hubs:
            url = self._get_config_option("db_url", "")
            self._hubs = set(await asyncio.to_thread(hub_accounts, _db(url)))
        ok = allowed(session.username, self._hubs, topic, action)
        if not ok:
            log.warning("%s refused to %s on %s", session.username, action.value, topic)
        return ok
