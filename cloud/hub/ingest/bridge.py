"""The hub's MQTT side: subscribe to every device's status, telemetry and events; publish
commands. Paho's network thread only enqueues; a writer thread parses and stores in batches
(everything queued, at most ``bridge_batch_size`` messages, per transaction). A bad message is
logged and counted, never kills either loop; a failing batch is retried message by message
so one poisoned row loses nothing else.

Parsing and storing is :class:`cloud.hub.ingest.batch_writer.BatchWriter`'s job, run on the writer
thread here or, with ``bridge_writer = "process"`` (``edgekit hub serve``'s default), in a
process of its own (:mod:`cloud.hub.ingest.writer_process`) so the two do not share a GIL.

Several hub workers: telemetry and events use the MQTT 5 shared subscription
``$share/edgekit-hub/...`` (the broker gives each message to one worker). Retained
messages are never delivered on shared subscriptions, so every worker also subscribes to
``status`` directly — status handling is an idempotent upsert. When the broker refuses
shared subscriptions (or ``mqtt_consumer = "lease"``), one worker elected by a database
lease consumes telemetry and events. See docs/hub.md.

Protocol: ``mqtt_version = "auto"`` connects with MQTT 5 and, when the broker answers
"unsupported protocol version" (MQTT 3.1.1-only brokers such as the demo's amqtt),
reconnects with 3.1.1 in lease mode — 3.1.1 has no shared subscriptions.

Several brokers (a cluster): ``broker_url`` may list them comma-separated; the bridge fails
over in order with a jittered back-off (:class:`edge.messaging.Failover`) and logs why each
connection was refused or dropped. NATS speaks MQTT 3.1.1 only: ``auto`` downgrades to it.

Login: :class:`cloud.hub.broker.BrokerSettings` (the configured account, else the hub's
account from ``edgekit hub broker-config``; TLS with ``mqtts://`` or a CA file). Connecting
anonymously works but is logged as a warning. On every connect to a broker it manages, the
hub reconciles the broker's accounts with the database (revoked devices are deleted there),
on a thread of its own: the control client waits for answers paho's loop would deliver.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter, deque
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy.exc import SQLAlchemyError

from cloud.hub.broker import (
    BrokerSettings,
    DynsecControl,
    DynsecError,
    parse_broker_url,
    reconcile,
    remember_broker_url,
)
from cloud.hub.config import HubConfig
from cloud.hub.ingest import fleet_counters
from cloud.hub.ingest.batch_writer import BatchWriter
from cloud.hub.storage import Database, leases
from edge.contract import (
    CMD,
    EVENTS,
    STATUS,
    TELEMETRY,
    Command,
    encode_json,
    topic,
    topic_filter,
)
from edge.errors import ConfigError
from edge.messaging import Failover
from edge.messaging.brokers import describe, dropped_words, refused_words

log = logging.getLogger(__name__)
LEASE_NAME = "mqtt-consumer"
LEASE_TTL_S = 15.0
QUEUE_LIMIT = 200_000
LINGER_S = 0.05  # how long the writer lets a burst gather before a batch (see _take_batch)
UNSUPPORTED_PROTOCOL = 0x84  # CONNACK reason; paho maps a 3.1.1 broker's code 1 to it
PROTOCOLS = {"5": mqtt.MQTTv5, "3.1.1": mqtt.MQTTv311}


class Sink(Protocol):
    """Where batches go: a BatchWriter here, or the writer process."""

    def flush(self, raw: list[tuple[str, bytes]]) -> Counter[str]: ...

    def close(self) -> None: ...


__all__ = ["MqttBridge", "parse_broker_url"]


class MqttBridge:
    def __init__(self, config: HubConfig, database: Database) -> None:
        if config.broker_url is None:
            raise ConfigError("the MQTT bridge needs a broker URL")
        self.config = config
        self.db = database
        self.settings = BrokerSettings.resolve(config, database)
        self.tls = self.settings.tls
        self.failover = Failover(self.settings.endpoints, cap=30.0)
        self._downgrading = False  # the refused MQTT 5 client is being replaced: no failover
        self.reconciled = threading.Event()  # set after each reconcile of broker accounts
        self.counters: Counter[str] = Counter()
        self._persisted: Counter[str] = Counter()  # what persist_counters already added
        self._persist_lock = threading.Lock()
        self.protocol = "3.1.1" if config.mqtt_version == "3.1.1" else "5"
        # resolved to shared|lease on the first SUBACK (or at once without MQTT 5)
        self.mode = "lease" if self.protocol == "3.1.1" else config.mqtt_consumer
        self.consuming = False
        # paho's thread appends, the writer pops: deque operations are atomic, so the hot
        # receive path takes no lock (queue.Queue cost a lock and a notify per message)
        self._inbox: deque[tuple[str, bytes]] = deque()
        self._wake = threading.Event()
        self._sink: Sink
        if config.bridge_writer == "process":
            from cloud.hub.ingest.writer_process import WriterProcess

            self._sink = WriterProcess(config)
        else:
            self._sink = BatchWriter(config, database)
        self._stop = threading.Event()
        self._writer = threading.Thread(
            target=self._write_loop, name="hub-mqtt-writer", daemon=True
        )
        self._lease_thread: threading.Thread | None = None
        self._pending_shared: dict[int, str] = {}
        self._pending_direct: set[int] = set()
        self._sub_lock = threading.Lock()  # a SUBACK may beat the caller to _pending_direct
        # set once the broker acknowledged this worker's telemetry subscription (SUBACK):
        # from then on every telemetry message published reaches this worker
        self.subscribed = threading.Event()
        self._client_lock = threading.Lock()  # start/stop vs. the protocol downgrade
        self.connected = threading.Event()
        self.last_error: str | None = None  # why the last TLS connection attempt failed
        self.holder = f"{leases.WORKER_ID}-bridge-{uuid.uuid4().hex[:6]}"
        self.client = self._make_client(self.protocol)

    def _make_client(self, protocol: str) -> mqtt.Client:
        client = self.settings.client("", PROTOCOLS[protocol])
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(0, 0)  # _fail_over waits (jittered) and picks the broker
        return client

    @property
    def host(self) -> str:
        """The broker in use (or being tried) now."""
        return self.failover.current.host

    @property
    def port(self) -> int:
        return self.failover.current.port

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> MqttBridge:
        if self.settings.username is None:
            log.warning(
                "the hub connects to broker %s:%s anonymously: anyone who reaches the broker "
                "can forge device reports and commands (see `edgekit hub broker-config`)",
                self.host, self.port,
            )  # fmt: skip
        self._writer.start()
        if self.mode == "lease":
            self._start_lease()
        with self._client_lock:
            self.client.connect_async(self.host, self.port, keepalive=30)
            self.client.loop_start()
        return self

    def stop(self) -> None:
        self._stop.set()
        try:
            with self._client_lock:
                self.client.disconnect()
                self.client.loop_stop()
        finally:
            self._writer.join(timeout=5)
            self._sink.close()
            self.persist_counters()
            if self.mode == "lease" and self.consuming:
                leases.release(self.db, LEASE_NAME, self.holder)

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self.connected.wait(timeout)

    # ------------------------------------------------------------------ MQTT callbacks
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        if rc.is_failure:
            downgrade = self.protocol == "5" and self.config.mqtt_version == "auto"
            if rc.value == UNSUPPORTED_PROTOCOL and downgrade:
                log.warning("broker %s:%s does not speak MQTT 5; using 3.1.1", self.host, self.port)
                self._downgrading = True
                # paho's loop thread runs this callback and cannot stop itself
                threading.Thread(target=self._downgrade, name="hub-mqtt-downgrade").start()
                return
            why = refused_words(rc)
            log.error("hub bridge at %s:%s: %s", self.host, self.port, why)
            self.last_error = why
            return
        self.failover.connected()
        self.last_error = None
        log.info("hub bridge connected to %s:%s (MQTT %s)", self.host, self.port, self.protocol)
        client.subscribe(topic_filter(STATUS), qos=1)
        if self.mode in ("auto", "shared"):
            self._subscribe_shared()
        elif self.consuming:
            self._subscribe_direct()
        self.connected.set()
        if self.settings.managed:
            threading.Thread(target=self._reconcile, name="hub-dynsec-reconcile").start()

    def _reconcile(self) -> None:
        """Delete the broker accounts of devices revoked while the hub could not reach it."""
        try:
            with DynsecControl(self.settings) as control, self.db.session() as s:
                reconcile(s, control)
                assert self.config.broker_url is not None
                remember_broker_url(s, self.config.broker_url)
        except (DynsecError, SQLAlchemyError) as exc:
            log.error("could not reconcile the broker's accounts: %s", exc)
        finally:
            self.reconciled.set()

    def _downgrade(self) -> None:
        """Replace the MQTT 5 client with a 3.1.1 one; without shared subscriptions one
        worker elected by the database lease consumes telemetry and events."""
        with self._client_lock:
            if self._stop.is_set() or self.protocol == "3.1.1":
                return
            old = self.client
            old.loop_stop()
            old.disconnect()
            self.protocol = "3.1.1"
            self._pending_shared.clear()
            if self.mode != "lease":
                if self.mode == "shared":
                    log.error("mqtt_consumer=shared needs MQTT 5; electing one consumer instead")
                self.mode = "lease"
                self._start_lease()
            self.client = self._make_client(self.protocol)
            self._downgrading = False
            self.client.connect_async(self.host, self.port, keepalive=30)
            self.client.loop_start()

    def _subscribe_shared(self) -> None:
        for kind in (TELEMETRY, EVENTS):
            _rc, mid = self.client.subscribe(
                f"$share/{self.config.mqtt_share_group}/{topic_filter(kind)}", qos=1
            )
            if mid is not None:
                self._pending_shared[mid] = kind

    def _subscribe_direct(self) -> None:
        with self._sub_lock:
            _rc, mid = self.client.subscribe(
                [(topic_filter(TELEMETRY), 1), (topic_filter(EVENTS), 1)]
            )
            if mid is not None:
                self._pending_direct.add(mid)

    def _on_subscribe(
        self, _c: mqtt.Client, _u: Any, mid: int, codes: list[ReasonCode], _p: Properties | None
    ) -> None:
        with self._sub_lock:
            direct = mid in self._pending_direct
            self._pending_direct.discard(mid)
        if direct:
            if self.consuming and all(not c.is_failure for c in codes):
                self.subscribed.set()
            return
        if mid not in self._pending_shared:
            return
        kind = self._pending_shared.pop(mid)
        if all(not c.is_failure for c in codes):
            self.mode, self.consuming = "shared", True
            if kind == TELEMETRY:
                self.subscribed.set()
            return
        if self.mode == "shared":
            log.error("broker refused the shared subscription: %s", codes)
            return
        log.warning("broker refused shared subscriptions (%s); electing one consumer", codes)
        self.mode = "lease"
        self._start_lease()

    def _on_connect_fail(self, client: mqtt.Client, _u: Any) -> None:
        """Name why a TLS connection fails (paho says only that it failed), once per reason."""
        why = self.settings.tls_failure(self.failover.current)
        if why is not None and why != self.last_error:
            log.error("hub bridge cannot connect to %s:%s: %s", self.host, self.port, why)
        self.last_error = why or f"cannot reach {self.failover.current.address}"
        self._fail_over(client)

    def _on_disconnect(
        self, client: mqtt.Client, _u: Any, flags: Any, rc: ReasonCode, _p: Any
    ) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        self.subscribed.clear()
        if self._stop.is_set() or self._downgrading or client is not self.client:
            return
        from_broker = bool(getattr(flags, "is_disconnect_packet_from_server", False))
        if was:
            why = dropped_words(rc, from_broker=from_broker, accepted=True)
            log.warning("hub bridge lost broker %s:%s: %s", self.host, self.port, why)
            self.last_error = why
        self._fail_over(client)

    def _fail_over(self, client: mqtt.Client) -> None:
        """On paho's thread, before its next attempt: the next broker of the list, after the
        jittered back-off (stop() cuts the wait short)."""
        before = self.failover.current
        nxt, delay = self.failover.failed()
        if nxt != before:
            log.info("hub bridge trying broker %s next (of %s) in %.1f s",
                     nxt.address, describe(self.failover.endpoints), delay)  # fmt: skip
            try:  # only re-targets the client (its socket is closed already)
                client.connect_async(nxt.host, nxt.port, keepalive=30)
            except (OSError, ValueError, RuntimeError) as exc:
                log.warning("hub bridge cannot switch to %s: %s", nxt.address, exc)
        self._stop.wait(delay)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self.counters["received"] += 1
        if len(self._inbox) >= QUEUE_LIMIT:
            self.counters["overflow"] += 1
            return
        self._inbox.append((msg.topic, bytes(msg.payload)))
        if not self._wake.is_set():
            self._wake.set()

    # ------------------------------------------------------------------ lease mode
    def _start_lease(self) -> None:
        if self._lease_thread is not None:
            return
        self._lease_thread = threading.Thread(
            target=self._lease_loop, name="hub-mqtt-lease", daemon=True
        )
        self._lease_thread.start()

    def _lease_loop(self) -> None:
        while not self._stop.is_set():
            try:
                held = leases.try_acquire(self.db, LEASE_NAME, LEASE_TTL_S, self.holder)
            except SQLAlchemyError:
                log.exception("lease check failed")
                held = False
            if held and not self.consuming:
                self.consuming = True
                self._subscribe_direct()
                log.info("this worker now consumes telemetry and events (%s)", self.holder)
            elif not held and self.consuming:
                self.consuming = False
                self.subscribed.clear()
                self.client.unsubscribe([topic_filter(TELEMETRY), topic_filter(EVENTS)])
            self._stop.wait(LEASE_TTL_S / 3)

    # ------------------------------------------------------------------ publishing
    def publish_command(self, device: str, cmd: Command) -> None:
        info = self.client.publish(topic(device, CMD), encode_json(cmd.to_dict()), qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.counters["publish_failed"] += 1
            log.warning("command %s to %s not queued (rc=%s)", cmd.id, device, info.rc)
        else:
            self.counters["commands"] += 1

    # ------------------------------------------------------------------ writing
    def _write_loop(self) -> None:
        while not self._stop.is_set() or self._inbox:
            batch = self._take_batch()
            if not batch:
                continue
            try:
                self.flush(batch)
            except Exception:  # the writer thread must outlive any one batch
                self.counters["lost"] += len(batch)
                log.exception("a batch of %d messages could not be stored", len(batch))

    def _take_batch(self) -> list[tuple[str, bytes]]:
        """Everything queued (at most ``bridge_batch_size``) once one message is there,
        after letting a burst gather for ``LINGER_S``.

        Group commit: while one batch is written the next accumulates, so batches grow
        with load. The short linger makes them grow sooner: the per-batch costs (one
        transaction, one KPI/model update per device, one row per device-minute) are
        shared by more messages, and the writer leaves the GIL to paho's receive thread
        meanwhile. An idle hub stores a message within ``LINGER_S``."""
        inbox = self._inbox
        if not inbox:
            self._wake.wait(self.config.bridge_flush_s)
            self._wake.clear()
            if not inbox:
                return []
        limit = self.config.bridge_batch_size
        if len(inbox) < limit and not self._stop.is_set():
            time.sleep(LINGER_S)
        return [inbox.popleft() for _ in range(min(len(inbox), limit))]

    def flush(self, raw: list[tuple[str, bytes]]) -> None:
        """Parse and store one batch through the writer (public so tests and benchmarks
        can drive it); its counters join the bridge's, and the shared ones (/metrics)."""
        self.counters.update(self._sink.flush(raw))
        self.persist_counters()

    def persist_counters(self) -> None:
        """Add what this bridge counted since the last call to the database's fleet
        counters, which ``/metrics`` serves: the sum over every hub process, whichever
        one answers the scrape, kept across restarts (cloud/hub/ingest/fleet_counters.py).
        One small upsert per batch; on a database error the increments wait for the next."""
        with self._persist_lock:
            now = Counter(self.counters)  # a copy: paho's thread counts on meanwhile
            delta = now - self._persisted
            if not delta:
                return
            try:
                with self.db.session() as s:
                    fleet_counters.add_bridge(s, delta)
            except SQLAlchemyError:
                log.warning("bridge counters not saved; retried with the next one", exc_info=True)
                return
            self._persisted = now
