"""Several broker URLs: the one parser of a broker list, the failover order with back-off and
jitter, and the words for why a broker refused or dropped a connection.

No paho here (paho's reason codes are read by value and name only), so the agent, the hub
(cloud/ may import edge/) and the simulator share this module and its tests need no broker.

A broker list is ``mqtt://a:1883,mqtt://b:1883`` (a flag given several times, a TOML array or
one comma-separated string). All URLs use one scheme: TLS settings are per client, not per
URL. Failover walks the list in order, starting again at the top after the last; each failed
attempt waits a jittered delay that doubles after every full round of failures, so a node that
died costs one short wait and a cluster that is down is not stormed by every device at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from edge.errors import ConfigError

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"


@dataclass(frozen=True)
class Endpoint:
    """One broker of a list: where it is, TLS or not, and the login its URL carries."""

    url: str
    host: str
    port: int
    tls: bool
    username: str | None = None
    password: str | None = None

    @property
    def address(self) -> str:
        """``host:port``, for logs (the URL may hold a password)."""
        return f"{self.host}:{self.port}"


def parse_endpoint(url: str) -> Endpoint:
    """One ``mqtt://[user:pass@]host[:port]`` (1883) or ``mqtts://...`` (8883) URL; raises
    ConfigError naming what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigError(f"broker URL must be a non-empty string, got {url!r}")
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"broker URL {url!r} is malformed: {exc}") from exc
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ConfigError(f"broker URL {url!r} must start with mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigError(f"broker URL {url!r} has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"broker URL {url!r} must not have a path or query")
    tls = parts.scheme == "mqtts"
    user = unquote(parts.username) if parts.username is not None else None
    pw = unquote(parts.password) if parts.password is not None else None
    return Endpoint(url, parts.hostname, port or (8883 if tls else 1883), tls, user, pw)


def parse_broker_urls(value: str | Sequence[str]) -> tuple[Endpoint, ...]:
    """The brokers of a list: one comma-separated string, or a sequence whose items may each
    be comma-separated (a repeated flag). At least one; one scheme for all; no duplicates."""
    if isinstance(value, str):
        raw = [value]
    elif isinstance(value, (list, tuple)):
        raw = list(value)
    else:
        raise ConfigError(f"broker: expected URL(s), got {value!r}")
    urls: list[str] = []
    for item in raw:
        if not isinstance(item, str):
            raise ConfigError(f"broker: expected URL strings, got {item!r}")
        urls.extend(u.strip() for u in item.split(",") if u.strip())
    if not urls:
        raise ConfigError("broker: at least one mqtt:// or mqtts:// URL is required")
    endpoints = tuple(parse_endpoint(u) for u in urls)
    if len({e.tls for e in endpoints}) > 1:
        raise ConfigError("broker: all URLs must use the same scheme (mqtt:// or mqtts://)")
    seen: set[tuple[str, int]] = set()
    for e in endpoints:
        if (e.host, e.port) in seen:
            raise ConfigError(f"broker: {e.address} is listed twice")
        seen.add((e.host, e.port))
    return endpoints


def join_broker_urls(value: str | Sequence[str]) -> str:
    """The list as the one comma-separated string config files and logs show."""
    return ",".join(e.url for e in parse_broker_urls(value))


def describe(endpoints: Sequence[Endpoint]) -> str:
    """``host:port, host:port`` without any password, for logs and messages."""
    return ", ".join(e.address for e in endpoints)


class Failover:
    """Which broker to try next and how long to wait first.

    ``failed()`` after any failed attempt or lost connection moves to the next endpoint and
    returns the delay; ``connected()`` resets the back-off. The delay is
    ``min(cap, base * 2**rounds) * uniform(0.5, 1)``, ``rounds`` being the full passes over
    the list that failed since the last success: with three nodes and one dead, the next node
    is tried within ``base`` seconds; with one broker this is the classic doubling back-off.
    """

    def __init__(
        self,
        endpoints: Sequence[Endpoint],
        *,
        base: float = 1.0,
        cap: float = 30.0,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not endpoints:
            raise ConfigError("broker: at least one URL is required")
        if base <= 0 or cap < base:
            raise ConfigError(f"failover delays need 0 < base <= cap, got {base}, {cap}")
        self.endpoints = tuple(endpoints)
        self.base, self.cap = base, cap
        self._rand = rand
        self.index = 0
        self.failures = 0  # consecutive, since the last successful connection

    @property
    def current(self) -> Endpoint:
        return self.endpoints[self.index]

    def connected(self) -> None:
        self.failures = 0

    def failed(self) -> tuple[Endpoint, float]:
        """Move on after a failure: ``(next endpoint, seconds to wait before trying it)``."""
        rounds = self.failures // len(self.endpoints)
        self.failures += 1
        self.index = (self.index + 1) % len(self.endpoints)
        ceiling = min(self.cap, self.base * 2 ** min(rounds, 30))
        return self.current, ceiling * (0.5 + 0.5 * self._rand())


# Hints for CONNACK reason codes whose name alone does not say what to do (MQTT 5 values;
# paho maps a 3.1.1 broker's codes 1-5 onto them). The name itself is always kept first.
_REFUSED_HINTS = {
    0x80: "on NATS: JetStream may still be electing a leader; retrying",
    0x84: "the broker does not speak this MQTT version; set mqtt_version to 3.1.1",
    0x85: "client id {client_id!r}: NATS refuses ids with a '.'; device ids may use letters, "
    "digits, '-' and '_'",
    0x87: "",  # "Not authorized" says it; callers grep for it verbatim
    0x9C: "the broker asks us to use another server of the list",
    0x9D: "the broker has moved",
}
# DISCONNECT reason codes a broker sends before closing (MQTT 5 only)
_DROPPED = {
    0x81: "the broker received a malformed packet from us",
    0x82: "protocol error",
    0x87: "not authorized (the account may have been revoked)",
    0x89: "the broker is busy",
    0x8B: "the broker is shutting down",
    0x8D: "keep-alive timeout: the broker heard nothing from us in time",
    0x8E: "session taken over: another client connected with the same client id",
    0x90: "topic name invalid",
    0x93: "receive maximum exceeded",
    0x95: "packet too large",
    0x97: "quota exceeded",
    0x98: "administrative action",
    0x9C: "use another server",
    0x9D: "the broker has moved",
}


def _code(reason: Any) -> int | None:
    value = getattr(reason, "value", reason)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def refused_words(reason: Any, client_id: str = "") -> str:
    """Why a broker refused a CONNECT: its CONNACK reason (paho ReasonCode or int) and, where
    the name does not say what to do, a hint."""
    code = _code(reason)
    hint = _REFUSED_HINTS.get(code, "") if code is not None else ""
    words = f"broker refused the connection: {reason}"
    return f"{words} ({hint.format(client_id=client_id)})" if hint else words


def dropped_words(reason: Any, *, from_broker: bool, accepted: bool) -> str:
    """Why a connection ended. ``from_broker``: the broker sent DISCONNECT (MQTT 5) with a
    reason; ``accepted``: it had answered our CONNECT, else it closed before accepting it."""
    code = _code(reason)
    if from_broker and code is not None and code in _DROPPED:
        return f"the broker disconnected us: {_DROPPED[code]}"
    if from_broker:
        return f"the broker disconnected us: {reason}"
    if not accepted:
        return (
            "the broker closed the connection before accepting it (a TLS or login problem, or "
            "on NATS a cluster still electing its JetStream leader)"
        )
    return "the connection was lost (the broker stopped, or the network dropped)"
