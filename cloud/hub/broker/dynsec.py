"""A client for Mosquitto's dynamic-security plugin: JSON commands published on
``$CONTROL/dynamic-security/v1``, answers read from ``.../response`` and matched to their
command by ``correlationData``.

Why this plugin: the hub applies an enrollment or a revocation on the running broker at once
(``deleteClient`` also disconnects every connection of that user), with no password file to
rewrite and no reload, and the hub need not run on the broker's host. Mosquitto 2.0's plugin
has no ``%u``/``%c`` patterns, so every device gets a role of its own that names its topics.

One connection per :class:`DynsecControl`; requests are synchronous (the caller waits for the
plugin's answer, ``timeout`` seconds at most), so call it from a request or a worker thread,
never from a paho callback.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from cloud.hub.broker.connection import BrokerSettings
from cloud.hub.broker.credentials import (
    CONTROL_RESPONSE,
    CONTROL_TOPIC,
    device_acls,
    device_role,
    role_acls,
)
from cloud.hub.config import HubConfig
from cloud.hub.storage import Database
from edge.contract import STATUS, topic

log = logging.getLogger(__name__)
DEVICE_TEXTNAME = "edgekit device"  # names the clients the hub made, for operators
MISSING = ("Client not found", "Role not found")


class DynsecError(Exception):
    """The broker could not be reached, refused the hub, or a command failed."""


class DynsecControl:
    """One logged-in control connection; use as a context manager."""

    def __init__(self, settings: BrokerSettings, *, timeout: float = 5.0) -> None:
        self.settings = settings
        self.timeout = timeout
        self._lock = threading.Lock()
        self._answers: dict[str, dict[str, Any]] = {}
        self._arrived = threading.Condition(self._lock)
        self._ready = threading.Event()
        self._failure: str | None = None
        self._client = settings.client("dynsec")
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect

    # ------------------------------------------------------------------ connection
    def __enter__(self) -> DynsecControl:
        self.open()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def open(self) -> None:
        try:
            self._client.connect(self.settings.host, self.settings.port, keepalive=30)
        except OSError as exc:
            raise DynsecError(f"broker {self.settings.describe()} unreachable: {exc}") from exc
        self._client.loop_start()
        if not self._ready.wait(self.timeout) or self._failure is not None:
            self.close()
            why = self._failure or f"no answer within {self.timeout:g} s"
            raise DynsecError(f"broker {self.settings.describe()}: {why}")

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            self._failure = f"refused the hub's control login ({rc})"
            self._ready.set()
            return
        client.subscribe(CONTROL_RESPONSE, qos=1)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, codes: list[ReasonCode],
                      _p: Any) -> None:  # fmt: skip
        if any(c.is_failure for c in codes):
            self._failure = "refused the control topic (is the dynamic-security plugin loaded?)"
        self._ready.set()

    def _on_disconnect(self, *_args: Any) -> None:
        with self._lock:
            self._arrived.notify_all()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            responses = json.loads(msg.payload)["responses"]
        except (ValueError, KeyError, TypeError):
            log.warning("unreadable dynamic-security response on %s", msg.topic)
            return
        with self._lock:
            for r in responses if isinstance(responses, list) else []:
                if isinstance(r, dict) and isinstance(r.get("correlationData"), str):
                    self._answers[r["correlationData"]] = r
            self._arrived.notify_all()

    # ------------------------------------------------------------------ commands
    def request(self, *commands: dict[str, Any]) -> list[dict[str, Any]]:
        """Send ``commands`` in one message (the plugin runs them in order) and return
        their answers in the same order; DynsecError when one does not arrive in time."""
        ids = [uuid.uuid4().hex for _ in commands]
        tagged = [{**c, "correlationData": i} for c, i in zip(commands, ids, strict=True)]
        payload = {"commands": tagged}
        info = self._client.publish(CONTROL_TOPIC, json.dumps(payload), qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise DynsecError(f"control command not sent (paho rc={info.rc})")
        with self._lock:
            done = self._arrived.wait_for(
                lambda: all(i in self._answers for i in ids) or not self._client.is_connected(),
                self.timeout,
            )
            answers = [self._answers.pop(i, None) for i in ids]
        if not done or any(a is None for a in answers):
            names = ", ".join(str(c.get("command")) for c in commands)
            raise DynsecError(f"the broker did not answer {names} (dynamic security loaded?)")
        return [a for a in answers if a is not None]

    def run(
        self, *commands: dict[str, Any], tolerate: tuple[str, ...] = ()
    ) -> list[dict[str, Any]]:
        """Like :meth:`request`, raising DynsecError for an answer with an error not in
        ``tolerate`` (e.g. "Client not found" when deleting what may be gone)."""
        answers = self.request(*commands)
        for cmd, answer in zip(commands, answers, strict=True):
            error = answer.get("error")
            if error and error not in tolerate:
                raise DynsecError(f"{cmd.get('command')} failed: {error}")
        return answers

    # ------------------------------------------------------------------ edgekit accounts
    def put_device(self, device: str, password: str) -> None:
        """Create (or replace: the old login is kicked) ``device``'s role and client."""
        role = device_role(device)
        self.run(
            {"command": "deleteClient", "username": device},
            {"command": "deleteRole", "rolename": role},
            {"command": "createRole", "rolename": role, "acls": role_acls(device_acls(device))},
            {"command": "createClient", "username": device, "password": password,
             "textname": DEVICE_TEXTNAME, "roles": [{"rolename": role, "priority": 0}]},
            tolerate=MISSING,
        )  # fmt: skip

    def remove_device(self, device: str) -> bool:
        """Delete ``device``'s client (which disconnects it, without its will) and role, and
        clear its retained status so no hub reads it as online again; False when the broker
        had no such client."""
        answers = self.run(
            {"command": "deleteClient", "username": device},
            {"command": "deleteRole", "rolename": device_role(device)},
            tolerate=MISSING,
        )
        info = self._client.publish(topic(device, STATUS), b"", qos=1, retain=True)
        try:
            info.wait_for_publish(self.timeout)
        except (RuntimeError, ValueError) as exc:
            raise DynsecError(f"could not clear {device}'s retained status: {exc}") from exc
        return not answers[0].get("error")

    def clients(self) -> list[dict[str, Any]]:
        """Every client of the broker (``listClients`` verbose: username, textname, roles)."""
        (answer,) = self.run({"command": "listClients", "verbose": True, "count": -1, "offset": 0})
        clients = (answer.get("data") or {}).get("clients") or []
        return [c for c in clients if isinstance(c, dict) and isinstance(c.get("username"), str)]


def control_for(config: HubConfig, database: Database) -> DynsecControl | None:
    """A control client when the hub manages its broker's accounts (a broker is configured
    and the hub logs in with the account broker-config made), else None."""
    if config.broker_url is None:
        return None
    settings = BrokerSettings.resolve(config, database)
    return DynsecControl(settings) if settings.managed else None
