"""The bridge's inbox: what paho's thread received, waiting for the writer, and the
acknowledgements owed for it.

QoS 1 messages are acknowledged (a manual PUBACK, paho ``manual_ack=True``) only after the
batch holding them was committed: a hub killed meanwhile leaves them unacknowledged in its
persistent session, and the broker delivers them again. Acks go out in arrival order (MQTT
asks for it) and only on the connection a message came on: after a reconnect the broker
resends the unacknowledged ones itself (duplicates are dropped by ``seq``), and an old
packet id may name another message by then.
"""

from __future__ import annotations

import threading
import time
from collections import deque

import paho.mqtt.client as mqtt

QUEUE_LIMIT = 200_000
LINGER_S = 0.05  # how long the writer lets a burst gather before a batch (see take)
GAP_S = 0.002  # ...unless nothing more arrives for this long (the broker's in-flight window)

Entry = tuple[str, bytes, int, int]  # topic, payload, packet id to ack (0: QoS 0), connection


class Inbox:
    """paho's thread appends, the writer pops: deque operations are atomic, so the hot
    receive path takes no lock (queue.Queue cost a lock and a notify per message)."""

    def __init__(self) -> None:
        self._q: deque[Entry] = deque()
        self._wake = threading.Event()
        self._lock = threading.Lock()  # the connection number vs. acks in flight
        self.connection = 0  # +1 on every connect and disconnect

    def __len__(self) -> int:
        return len(self._q)

    def new_connection(self) -> None:
        """A connect or disconnect (paho's thread): acks owed on the old one are dropped."""
        with self._lock:
            self.connection += 1

    def put(self, msg: mqtt.MQTTMessage) -> bool:
        """Queue ``msg`` (False when full: it stays unacknowledged, so it comes again)."""
        if len(self._q) >= QUEUE_LIMIT:
            return False
        mid = msg.mid if msg.qos > 0 else 0
        self._q.append((msg.topic, bytes(msg.payload), mid, self.connection))
        if not self._wake.is_set():
            self._wake.set()
        return True

    def wake(self) -> None:
        self._wake.set()

    def take(self, limit: int, idle_s: float, stopping: threading.Event) -> list[Entry]:
        """Everything queued (at most ``limit``) once one message is there, after letting a
        burst gather for up to ``LINGER_S`` (less when nothing arrives for ``GAP_S``: the
        broker sends at most its in-flight window, often 20, unacknowledged messages, so
        waiting longer would only idle); ``[]`` after ``idle_s`` without any.

        Group commit: while one batch is written the next accumulates, so batches grow
        with load. The short linger makes them grow sooner: the per-batch costs (one
        transaction, one KPI/model update per device, one row per device-minute) are
        shared by more messages, and the writer leaves the GIL to paho's receive thread
        meanwhile. An idle hub stores a message within ``LINGER_S``."""
        q = self._q
        if not q:
            self._wake.wait(idle_s)
            self._wake.clear()
            if not q:
                return []
        deadline = time.monotonic() + LINGER_S
        n = len(q)
        while n < limit and not stopping.is_set() and time.monotonic() < deadline:
            time.sleep(GAP_S)
            if len(q) == n:
                break
            n = len(q)
        return [q.popleft() for _ in range(min(len(q), limit))]

    def ack(self, batch: list[Entry], client: mqtt.Client) -> None:
        """PUBACK a committed batch (see the module docstring)."""
        with self._lock:
            now = self.connection
            for _t, _p, mid, got in batch:
                if mid and got == now:
                    client.ack(mid, 1)
