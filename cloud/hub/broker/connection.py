"""How the hub reaches and logs in to its broker: one place for the URL, the account and the
TLS options, shared by the MQTT bridge and the dynamic-security control client.

The account is the configured one (``mqtt_username``/``mqtt_password``) or, when none is
configured, the hub's own account that ``edgekit hub broker-config`` created in the database
(hub secret ``mqtt_hub_password``, user :data:`HUB_USERNAME`). The hub manages the broker's
accounts only with that account and only when broker-config wrote a dynamic-security
configuration from this database (hub secret ``mqtt_broker_dynsec``).

The URL may list several brokers of a cluster, comma-separated (parsed by edge's one parser,
:func:`edge.messaging.parse_broker_urls`): the bridge fails over between them in order;
``host``/``port`` name the first, which one-shot clients (dynsec control, push-keys) use.
"""

from __future__ import annotations

import logging
import ssl
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from cloud.hub.broker.credentials import HUB_USERNAME
from cloud.hub.config import HubConfig
from cloud.hub.storage import Database, secrets
from edge.errors import ConfigError
from edge.messaging import Endpoint, parse_broker_urls

log = logging.getLogger(__name__)
HUB_PASSWORD_SECRET = "mqtt_hub_password"
# set by broker-config: the broker runs our dynamic-security file. Not implied by the hub
# account alone: the demo's embedded broker checks the same account without the plugin.
MANAGED_MARKER = "mqtt_broker_dynsec"


def parse_broker_url(url: str) -> tuple[str, int, bool]:
    """``(host, port, tls)`` of the first broker of ``mqtt://HOST:PORT`` (1883),
    ``mqtts://HOST:PORT`` (8883) or a comma-separated list of them."""
    first = parse_broker_urls(url)[0]
    return first.host, first.port, first.tls


@dataclass(frozen=True)
class BrokerSettings:
    """Where the broker is and how the hub logs in; ``managed`` when the hub logs in with
    the account the generated broker configuration gave it (and so drives dynsec)."""

    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_insecure: bool = False
    managed: bool = False
    endpoints: tuple[Endpoint, ...] = field(default=())  # every broker of the list, in order

    @staticmethod
    def resolve(config: HubConfig, database: Database) -> BrokerSettings:
        """The settings for ``config``'s broker, with the hub account from the database when
        the config names no user."""
        if config.broker_url is None:
            raise ConfigError("no broker URL is configured")
        endpoints = parse_broker_urls(config.broker_url)
        host, port, tls = endpoints[0].host, endpoints[0].port, endpoints[0].tls
        username, password = config.mqtt_username, config.mqtt_password
        managed = False
        if username is None:
            with database.session() as s:
                stored = secrets.get(s, HUB_PASSWORD_SECRET)
                marked = secrets.get(s, MANAGED_MARKER) is not None
            if stored is not None:
                username, password, managed = HUB_USERNAME, stored, marked
        elif username == HUB_USERNAME:
            with database.session() as s:
                ours = password is not None and password == secrets.get(s, HUB_PASSWORD_SECRET)
                managed = ours and secrets.get(s, MANAGED_MARKER) is not None
        tls = tls or config.mqtt_ca_file is not None
        return BrokerSettings(
            host, port, tls, username, password, config.mqtt_ca_file,
            config.mqtt_cert_file, config.mqtt_key_file, config.mqtt_tls_insecure, managed,
            endpoints,
        )  # fmt: skip

    def _tls_files(self) -> tuple[str | None, str | None, str | None]:
        """CA, client certificate and key as the string paths paho and ssl take."""
        ca, cert, key = self.ca_file, self.cert_file, self.key_file
        return (str(ca) if ca else None, str(cert) if cert else None, str(key) if key else None)

    def client(self, name: str, protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv311) -> mqtt.Client:
        """A paho client ``edgekit-hub[-name]-<random>`` with this login and TLS applied
        (the hub's bridge, its dynamic-security control and ``push-keys`` alike)."""
        prefix = "edgekit-hub" + (f"-{name}" if name else "")
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"{prefix}-{uuid.uuid4().hex[:10]}",
            protocol=protocol,
        )
        self.apply(client)
        return client

    def apply(self, client: mqtt.Client) -> None:
        """Set the login and TLS options on a paho client (before it connects)."""
        if self.username is not None:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            ca, cert, key = self._tls_files()
            try:
                client.tls_set(ca_certs=ca, certfile=cert, keyfile=key, cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"MQTT TLS files cannot be used: {exc}") from exc
            if self.tls_insecure:
                client.tls_insecure_set(True)

    def tls_failure(self, endpoint: Endpoint | None = None) -> str | None:
        """Why a TLS connection with these settings to ``endpoint`` (default: the first
        broker) fails (see edge.messaging.tls_failure), or None: no TLS, it works, or the
        broker cannot be reached at all."""
        if not self.tls:
            return None
        from edge.messaging import tls_failure

        ca, cert, key = self._tls_files()
        host, port = (endpoint.host, endpoint.port) if endpoint else (self.host, self.port)
        return tls_failure(host, port, ca, cert, key, insecure=self.tls_insecure)

    def describe(self) -> str:
        who = self.username or "anonymous"
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port} as {who}"
