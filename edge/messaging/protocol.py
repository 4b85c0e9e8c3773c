"""What every message transport offers the agent, independent of paho.

The agent, the outbox and the telemetry consumer program against :class:`Transport`; the
real implementation is :class:`edge.messaging.paho.MqttTransport`, the in-process one for fast
tests is :class:`edge.messaging.memory.MemoryTransport`. Import everything from
:mod:`edge.messaging.paho`; this module only exists so the memory broker needs no paho.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from edge.errors import TransportError

log = logging.getLogger("edgekit.transport")

Handler = Callable[[str, bytes], None]
ConnectListener = Callable[[], None]

MQTT_MAX_PAYLOAD = 268_435_455  # the protocol's own limit (remaining length field)


@dataclass(frozen=True)
class Will:
    """A message the broker publishes for us if we vanish (and the graceful goodbye)."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class PublishResult:
    """A handle on one publish: ``wait(timeout)`` is True once the broker acknowledged it
    (PUBACK for QoS 1, written to the socket for QoS 0)."""

    def __init__(self, mid: int, waiter: Callable[[float], bool]) -> None:
        self.mid = mid
        self._waiter = waiter

    def wait(self, timeout: float) -> bool:
        return self._waiter(timeout)

    @staticmethod
    def done(mid: int = 0) -> PublishResult:
        return PublishResult(mid, lambda _timeout: True)


@dataclass
class TransportStats:
    """Counters a transport keeps; ``snapshot()`` is what ``Transport.stats`` returns."""

    messages_in: int = 0
    messages_out: int = 0
    handler_errors: int = 0
    dropped_oversize: int = 0
    dropped_backlog: int = 0
    connects: int = 0
    disconnects: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {k: v for k, v in vars(self).items() if not k.startswith("_")}


@runtime_checkable
class Transport(Protocol):
    """A publish/subscribe connection to one broker.

    Threading: handlers and connect listeners run on one dispatcher thread of the transport
    (never on the network thread), so they may call ``publish_and_wait``; a slow handler
    delays the next message but never the keep-alive. Handler exceptions are logged and
    counted (``stats["handler_errors"]``) and never stop delivery.
    """

    @property
    def connected(self) -> bool: ...

    @property
    def stats(self) -> dict[str, int]: ...

    def connect(self, will: Will | None = None) -> None:
        """Start connecting in the background; reconnects with backoff until closed."""

    def wait_connected(self, timeout: float) -> bool: ...

    def set_will(self, will: Will | None) -> None:
        """Replace the will. A broker keeps the will it got at CONNECT, so a connected
        transport re-arms it by reconnecting cleanly (DISCONNECT drops the old will without
        publishing it; the next CONNECT carries the new one); later reconnects use it too."""

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        """Kept for the life of the transport and re-sent on every reconnect."""

    def unsubscribe(self, topic_filter: str) -> None: ...

    def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False
    ) -> PublishResult | None:
        """Best effort: None when offline (nothing is queued; use the outbox for that)."""

    def publish_and_wait(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, timeout: float = 5.0
    ) -> bool:
        """True only once the broker acknowledged the message."""

    def add_connect_listener(self, fn: ConnectListener) -> None:
        """``fn()`` runs after every (re)connect, once subscriptions were re-sent."""

    def close(self, graceful: bool = True, final: Will | None = None) -> None:
        """Graceful: publish ``final`` (e.g. the retained offline status), then DISCONNECT,
        so the broker discards the will. Not graceful: drop the socket like a crash, so
        the broker publishes the will."""


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching with ``+`` and ``#``; wildcards never match ``$`` topics."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_parts, t_parts = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(f_parts):
        if part == "#":
            return True
        if i >= len(t_parts):
            return False
        if part != "+" and part != t_parts[i]:
            return False
    return len(f_parts) == len(t_parts)


def check_topic(topic: str) -> str:
    """A topic to publish to: non-empty, no wildcards, no NUL."""
    if not isinstance(topic, str) or not topic or any(c in topic for c in "+#\0"):
        raise TransportError(f"invalid publish topic {topic!r}")
    return topic


def check_filter(topic_filter: str) -> str:
    """A subscription filter: ``#`` only last and alone in its level, ``+`` alone in its level."""
    if not isinstance(topic_filter, str) or not topic_filter or "\0" in topic_filter:
        raise TransportError(f"invalid topic filter {topic_filter!r}")
    parts = topic_filter.split("/")
    for i, part in enumerate(parts):
        if ("#" in part and (part != "#" or i != len(parts) - 1)) or ("+" in part and part != "+"):
            raise TransportError(f"invalid topic filter {topic_filter!r}")
    return topic_filter


def check_qos(qos: int) -> int:
    if qos not in (0, 1, 2):
        raise TransportError(f"QoS must be 0, 1 or 2, got {qos!r}")
    return qos


def check_publish(topic: str, payload: bytes, qos: int, max_payload: int) -> None:
    """What every transport refuses before sending: a bad topic or QoS, or a payload over
    the configured limit (refused here, never truncated or split)."""
    check_topic(topic)
    check_qos(qos)
    if len(payload) > max_payload:
        raise TransportError(
            f"payload of {len(payload)} bytes exceeds the {max_payload} byte limit"
        )


def run_handler(stats: TransportStats, handler: Handler, topic: str, payload: bytes) -> None:
    """Call one handler; its failure is logged and counted, never propagated."""
    try:
        handler(topic, payload)
    except Exception:
        stats.add("handler_errors")
        log.exception("handler for %s failed", topic)


def run_listener(stats: TransportStats, fn: ConnectListener) -> None:
    try:
        fn()
    except Exception:
        stats.add("handler_errors")
        log.exception("connect listener failed")
