"""An in-process MQTT broker and transport for fast, deterministic unit tests.

Same semantics as the real thing where the agent relies on them: ``+``/``#`` wildcards,
retained messages (delivered on subscribe, cleared by an empty retained payload), the last
will on a non-graceful close, subscriptions re-sent on reconnect, and a simulated outage
(``broker.down()`` / ``broker.up()``: clients drop, publishes fail, and every client that
was started reconnects when the broker comes back). QoS acknowledgements are immediate.

Unlike :class:`edge.messaging.paho.MqttTransport`, delivery is synchronous on the publishing
thread, so a test can publish and assert right away.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from edge.contract import MAX_PAYLOAD_BYTES
from edge.messaging.protocol import (
    ConnectListener,
    Handler,
    PublishResult,
    TransportStats,
    Will,
    check_filter,
    check_publish,
    check_qos,
    run_handler,
    run_listener,
    topic_matches,
)


@dataclass(frozen=True)
class Message:
    """One message as the broker saw it (``MemoryBroker.history``)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    sender: str


class MemoryBroker:
    """Routes messages between :class:`MemoryTransport` clients in one process."""

    def __init__(self, history: int = 10_000) -> None:
        self._lock = threading.RLock()
        self._clients: list[MemoryTransport] = []
        self._retained: dict[str, tuple[bytes, int]] = {}
        self._up = True
        self.history: deque[Message] = deque(maxlen=history)

    @property
    def is_up(self) -> bool:
        return self._up

    def retained(self, topic: str) -> bytes | None:
        with self._lock:
            item = self._retained.get(topic)
        return item[0] if item else None

    def messages(self, topic_filter: str = "#") -> list[Message]:
        """Every message seen on topics matching the filter, oldest first."""
        with self._lock:
            return [m for m in self.history if topic_matches(topic_filter, m.topic)]

    def down(self) -> None:
        """Simulate a broker outage: every client drops (no wills: the broker died)."""
        with self._lock:
            self._up = False
            clients = list(self._clients)
        for c in clients:
            c._broker_lost()

    def up(self) -> None:
        """End the outage; every started client reconnects and re-subscribes."""
        with self._lock:
            self._up = True
            clients = list(self._clients)
        for c in clients:
            c._try_connect()

    # -- used by MemoryTransport ---------------------------------------------------------

    def _attach(self, client: MemoryTransport) -> bool:
        with self._lock:
            if client not in self._clients:
                self._clients.append(client)
            return self._up

    def _detach(self, client: MemoryTransport) -> None:
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)

    def _route(self, msg: Message) -> bool:
        with self._lock:
            if not self._up:
                return False
            self.history.append(msg)
            if msg.retain:
                if msg.payload:
                    self._retained[msg.topic] = (msg.payload, msg.qos)
                else:
                    self._retained.pop(msg.topic, None)
            targets = [c for c in self._clients if c.connected and c._wants(msg.topic)]
        for c in targets:  # outside the lock: handlers may publish
            c._deliver(msg.topic, msg.payload)
        return True

    def _retained_for(self, topic_filter: str) -> list[tuple[str, bytes]]:
        with self._lock:
            return [
                (t, p) for t, (p, _q) in self._retained.items() if topic_matches(topic_filter, t)
            ]


class MemoryTransport:
    """A :class:`edge.messaging.paho.Transport` connected to a :class:`MemoryBroker`."""

    def __init__(
        self, broker: MemoryBroker, client_id: str = "memory", max_payload: int = MAX_PAYLOAD_BYTES
    ) -> None:
        self.broker = broker
        self.client_id = client_id
        self.max_payload = max_payload
        self._lock = threading.RLock()
        self._subs: list[tuple[str, Handler, int]] = []
        self._listeners: list[ConnectListener] = []
        self._will: Will | None = None
        self._started = False
        self._connected = False
        self._connected_evt = threading.Event()
        self._stats = TransportStats()

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def stats(self) -> dict[str, int]:
        return self._stats.snapshot()

    def connect(self, will: Will | None = None) -> None:
        with self._lock:
            self._will = will
            self._started = True
        self._try_connect()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected_evt.wait(timeout)

    def set_will(self, will: Will | None) -> None:
        """In memory the will is read when the connection drops, so replacing it suffices."""
        with self._lock:
            self._will = will

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        check_filter(topic_filter)
        check_qos(qos)
        with self._lock:
            self._subs.append((topic_filter, handler, qos))
            live = self._connected
        if live:
            for t, p in self.broker._retained_for(topic_filter):
                self._stats.add("messages_in")
                run_handler(self._stats, handler, t, p)

    def unsubscribe(self, topic_filter: str) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s[0] != topic_filter]

    def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False
    ) -> PublishResult | None:
        check_publish(topic, payload, qos, self.max_payload)
        if not self._connected:
            return None
        if not self.broker._route(Message(topic, bytes(payload), qos, retain, self.client_id)):
            return None
        self._stats.add("messages_out")
        return PublishResult.done()

    def publish_and_wait(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, timeout: float = 5.0
    ) -> bool:
        return self.publish(topic, payload, qos, retain) is not None

    def add_connect_listener(self, fn: ConnectListener) -> None:
        with self._lock:
            self._listeners.append(fn)

    def close(self, graceful: bool = True, final: Will | None = None) -> None:
        with self._lock:
            was_connected, will = self._connected, self._will
            self._started = False
        if was_connected and graceful and final is not None:
            self.publish(final.topic, final.payload, final.qos, final.retain)
        self._set_connected(False)
        self.broker._detach(self)
        if was_connected and not graceful and will is not None:
            self.broker._route(Message(will.topic, will.payload, will.qos, will.retain, "broker"))

    # -- called by the broker ------------------------------------------------------------

    def _try_connect(self) -> None:
        with self._lock:
            if not self._started or self._connected:
                return
            if not self.broker._attach(self):
                return
            self._set_connected(True)
            subs = list(self._subs)
            listeners = list(self._listeners)
        self._stats.add("connects")
        for topic_filter, handler, _qos in subs:
            for t, p in self.broker._retained_for(topic_filter):
                self._stats.add("messages_in")
                run_handler(self._stats, handler, t, p)
        for fn in listeners:
            run_listener(self._stats, fn)

    def _broker_lost(self) -> None:
        if self._connected:
            self._stats.add("disconnects")
        self._set_connected(False)

    def _set_connected(self, value: bool) -> None:
        self._connected = value
        if value:
            self._connected_evt.set()
        else:
            self._connected_evt.clear()

    def _wants(self, topic: str) -> bool:
        with self._lock:
            return any(topic_matches(f, topic) for f, _h, _q in self._subs)

    def _deliver(self, topic: str, payload: bytes) -> None:
        if len(payload) > self.max_payload:
            self._stats.add("dropped_oversize")
            return
        self._stats.add("messages_in")
        with self._lock:
            handlers = [h for f, h, _q in self._subs if topic_matches(f, topic)]
        for h in handlers:
            run_handler(self._stats, h, topic, payload)
