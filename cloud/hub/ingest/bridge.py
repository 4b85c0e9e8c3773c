"""The hub's MQTT side: subscribe to every device's status, telemetry and events; publish
commands. Paho's network thread only enqueues; a writer thread parses and stores in batches
(everything queued, at most ``bridge_batch_size`` messages, per transaction). A bad message is
logged and counted, never kills either loop; a failing batch is retried message by message
so one poisoned row loses nothing else.

Nothing acknowledged is lost: the session is persistent under a stable client id
(:mod:`cloud.hub.ingest.session`), so the broker queues for the hub while it is away, and
QoS 1 messages are acknowledged only after the batch holding them was committed
(:mod:`cloud.hub.ingest.inbox`). A batch that cannot be stored is not acknowledged; the
bridge reconnects and the broker delivers it again.

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
import uuid
from collections import Counter
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
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
from cloud.hub.ingest import fleet_counters, orphans
from cloud.hub.ingest.batch_writer import BatchWriter
from cloud.hub.ingest.inbox import Inbox
from cloud.hub.ingest.session import ClientIdentity, fleet_tag
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
CONNACK_TIMEOUT_S = 5.0  # auto: no answer to an MQTT 5 CONNECT this long means 3.1.1 only
ORPHAN_CHECK_S = 5.0  # how often a hub looks for sessions of gone hubs (orphans.py)
RETRY_S = 1.0  # after a batch that could not be stored, before reconnecting for redelivery
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
        self._replacing = False  # the client is being replaced or reconnected: no failover
        self.reconciled = threading.Event()  # set after each reconcile of broker accounts
        self.counters: Counter[str] = Counter()
        self._persisted: Counter[str] = Counter()  # what persist_counters already added
        self._persist_lock = threading.Lock()
        self.protocol = "3.1.1" if config.mqtt_version == "3.1.1" else "5"
        # resolved to shared|lease on the first SUBACK (or at once without MQTT 5)
        self.mode = "lease" if self.protocol == "3.1.1" else config.mqtt_consumer
        self.consuming = False
        self._inbox = Inbox()
        self._closing = threading.Event()  # stop(): leave new arrivals to the next session
        self._maybe_subscribed = False  # a resumed lease-mode session may hold subscriptions
        self._connack_seen = False  # the broker answered a CONNECT of ours
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
        self.persistent = config.mqtt_session_expiry_s > 0
        # start() claims the id (a slot lease) and makes the real client; a bridge that is
        # never started (tests and benchmarks drive flush) claims nothing
        self.identity: ClientIdentity | None = None
        self.client_id = ""
        self.share_group = config.mqtt_share_group or "edgekit-hub"  # per fleet from start()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)

    def _make_client(self, protocol: str) -> mqtt.Client:
        """A client with this bridge's stable id that acks only when told (Inbox.ack)."""
        v5 = protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=PROTOCOLS[protocol],
            clean_session=None if v5 else not self.persistent,
            manual_ack=True,
        )
        self.settings.apply(client)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_pre_connect = self._on_pre_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.reconnect_delay_set(0, 0)  # _fail_over waits (jittered) and picks the broker
        return client

    def _connect(self, client: mqtt.Client, host: str, port: int) -> None:
        """Target ``client`` at a broker; every attempt resumes the session (MQTT 5: never a
        clean start, and the broker keeps the session ``mqtt_session_expiry_s``)."""
        if client.protocol != mqtt.MQTTv5:
            client.connect_async(host, port, keepalive=30)
            return
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = int(self.config.mqtt_session_expiry_s)
        client.connect_async(
            host, port, keepalive=30, clean_start=not self.persistent, properties=props
        )

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
        self.identity = ClientIdentity(self.db, self.holder, self.config.mqtt_client_id)
        self.client_id = self.identity.client_id
        # the identity read the fleet's tag already, unless a client id was configured
        self.share_group = self.config.mqtt_share_group or (
            f"edgekit-hub-{self.identity.tag or fleet_tag(self.db)}"
        )
        self.client = self._make_client(self.protocol)
        self._writer.start()
        if self.mode == "lease":
            self._start_lease()
        with self._client_lock:
            self._connect(self.client, self.host, self.port)
            self.client.loop_start()
        if self.identity.slot is not None and self.persistent:
            threading.Thread(target=self._orphan_loop, name="hub-mqtt-orphans", daemon=True).start()
        return self

    def _orphan_loop(self) -> None:
        """Drain and end the sessions of hubs that are gone (cloud/hub/ingest/orphans.py)."""
        assert self.identity is not None
        writer = BatchWriter(self.config, self.db)  # this thread's own: not thread-safe
        group = self.share_group
        filters = [topic_filter(k) for k in (STATUS, TELEMETRY, EVENTS)]
        filters += [f"$share/{group}/{topic_filter(k)}" for k in (TELEMETRY, EVENTS)]

        def run(client_id: str) -> int:
            protocol = PROTOCOLS[self.protocol]
            endpoint = (self.host, self.port)
            return orphans.drain(
                self.settings, endpoint, client_id, protocol, writer.flush, filters
            )

        while not self._stop.wait(ORPHAN_CHECK_S):
            if not self.connected.is_set():
                continue
            try:
                orphans.adopt_orphans(self.db, self.holder, self.identity.id_for, run)
            except SQLAlchemyError:
                log.warning("could not look for sessions of gone hubs", exc_info=True)

    def stop(self) -> None:
        """Store and acknowledge what was received while still connected; what arrives
        meanwhile stays unacknowledged in the session, for the next hub with this id."""
        self._closing.set()
        self._stop.set()
        self._inbox.wake()
        try:
            if self._writer.is_alive():
                self._writer.join(timeout=10)
            with self._client_lock:
                self.client.disconnect()
                self.client.loop_stop()
        finally:
            self._sink.close()
            self.persist_counters()
            if self.mode == "lease" and self.consuming:
                leases.release(self.db, LEASE_NAME, self.holder)
            if self.identity is not None:
                self.identity.release()

    def wait_connected(self, timeout: float = 10.0) -> bool:
        return self.connected.wait(timeout)

    # ------------------------------------------------------------------ MQTT callbacks
    def _on_pre_connect(self, client: mqtt.Client, _u: Any) -> None:
        """amqtt (3.1.1 only) never answers an MQTT 5 CONNECT carrying properties (ours has
        the Session Expiry Interval), where other 3.1.1 brokers refuse it: with ``auto``, a
        first CONNECT left unanswered for ``CONNACK_TIMEOUT_S`` downgrades too."""
        if self.protocol == "5" and self.config.mqtt_version == "auto" and not self._connack_seen:
            timer = threading.Timer(
                CONNACK_TIMEOUT_S, self._connack_overdue, args=(client, self._inbox.connection)
            )
            timer.daemon = True
            timer.start()

    def _connack_overdue(self, client: mqtt.Client, generation: int) -> None:
        if (
            client is not self.client
            or generation != self._inbox.connection
            or self._connack_seen
            or self._stop.is_set()
        ):
            return
        log.warning("broker %s:%s did not answer an MQTT 5 CONNECT in %.0f s; using 3.1.1",
                    self.host, self.port, CONNACK_TIMEOUT_S)  # fmt: skip
        self._replacing = True
        self._downgrade()

    def _on_connect(
        self, client: mqtt.Client, _u: Any, flags: Any, rc: ReasonCode, _p: Any
    ) -> None:
        self._inbox.new_connection()
        self._connack_seen = True
        if rc.is_failure:
            downgrade = self.protocol == "5" and self.config.mqtt_version == "auto"
            if rc.value == UNSUPPORTED_PROTOCOL and downgrade:
                log.warning("broker %s:%s does not speak MQTT 5; using 3.1.1", self.host, self.port)
                self._replacing = True
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
        elif getattr(flags, "session_present", False):
            self._maybe_subscribed = True  # the lease loop unsubscribes if another consumes
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
            self._replacing = False
            self._connect(self.client, self.host, self.port)
            self.client.loop_start()

    def _subscribe_shared(self) -> None:
        for kind in (TELEMETRY, EVENTS):
            _rc, mid = self.client.subscribe(
                f"$share/{self.share_group}/{topic_filter(kind)}", qos=1
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
        self._inbox.new_connection()  # acks owed on the lost connection are dropped
        was = self.connected.is_set()
        self.connected.clear()
        self.subscribed.clear()
        if self._stop.is_set() or self._replacing or client is not self.client:
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
                self._connect(client, nxt.host, nxt.port)
            except (OSError, ValueError, RuntimeError) as exc:
                log.warning("hub bridge cannot switch to %s: %s", nxt.address, exc)
        self._stop.wait(delay)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if self._closing.is_set():
            return  # not acknowledged: the broker keeps it for this id's next session
        self.counters["received"] += 1
        if not self._inbox.put(msg):
            self.counters["overflow"] += 1  # not acknowledged either: redelivered later

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
            elif not held and (self.consuming or self._maybe_subscribed):
                # a persistent session would keep queueing for a worker that does not consume
                self.consuming = self._maybe_subscribed = False
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
        while not self._stop.is_set() or len(self._inbox):
            batch = self._inbox.take(
                self.config.bridge_batch_size, self.config.bridge_flush_s, self._stop
            )
            if not batch:
                continue
            counted = False  # the writer process counts a batch it could not store as lost
            try:
                counted = bool(self.flush([(t, p) for t, p, _m, _g in batch]).get("lost"))
                if not counted:
                    self._inbox.ack(batch, self.client)
                    continue
            except Exception:  # the writer thread must outlive any one batch
                log.exception("a batch of %d messages could not be stored", len(batch))
            owed = sum(1 for e in batch if e[2])  # QoS 1: the broker has them until acked
            if not counted:
                self.counters["lost"] += len(batch) - owed  # QoS 0: gone
            self.counters["unacked"] += owed
            if owed and self.identity is not None:
                self._redeliver()

    def _redeliver(self) -> None:
        """After a batch that could not be stored: reconnect (after ``RETRY_S``) so the
        broker delivers what was not acknowledged again; meanwhile it queues the rest."""
        if self._stop.wait(RETRY_S):
            return
        log.warning("reconnecting so the broker delivers the unstored messages again")
        with self._client_lock:
            if self._stop.is_set():
                return
            self._replacing = True
            try:
                self.client.disconnect()
                self.client.loop_stop()
            finally:
                self._replacing = False
            self._connect(self.client, self.host, self.port)
            self.client.loop_start()

    def flush(self, raw: list[tuple[str, bytes]]) -> Counter[str]:
        """Parse and store one batch through the writer (public so tests and benchmarks
        can drive it); its counters join the bridge's, and the shared ones (/metrics)."""
        delta = self._sink.flush(raw)
        self.counters.update(delta)
        self.persist_counters()
        return delta

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
