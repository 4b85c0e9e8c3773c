"""MQTT transport: the only module of edgekit that imports paho.

:class:`MqttTransport` wraps paho-mqtt 2.x (callback API v2) behind the small
:class:`Transport` protocol the agent, the outbox and ``edgekit telemetry tail`` use:
background connect to one of several brokers with failover, back-off and jitter
(edge/messaging/brokers.py: the next URL of the list after every failure, waits doubling up to
``reconnect_max_s`` after every failed round), the reason of every refusal or drop logged and
kept in ``last_error``, subscriptions re-sent on every reconnect, handlers run on one
dispatcher thread (so a slow or failing handler never stalls the keep-alive), MQTT 3.1.1 by
default and 5 when asked, TLS and username/password. Nothing is queued while offline:
``publish`` returns None and ``publish_and_wait`` False, and durable delivery is the outbox's
job (edge/messaging/outbox.py).

Payloads larger than ``max_payload`` are refused on publish (TransportError) and dropped
before any handler sees them on receive (counted as ``dropped_oversize``).
"""

from __future__ import annotations

import logging
import os
import queue
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from edge.contract import MAX_PAYLOAD_BYTES
from edge.errors import ConfigError, TransportError
from edge.messaging.brokers import (
    Endpoint,
    Failover,
    describe,
    dropped_words,
    parse_broker_urls,
    refused_words,
)
from edge.messaging.protocol import (
    MQTT_MAX_PAYLOAD,
    ConnectListener,
    Handler,
    PublishResult,
    TransportStats,
    Will,
    check_filter,
    check_publish,
    check_qos,
    check_topic,
    run_handler,
    run_listener,
    topic_matches,
)

log = logging.getLogger("edgekit.transport")

_CONNECTED_MARK = object()  # queued to the dispatcher after each (re)connect
_STOP_MARK = object()


@dataclass
class MqttSettings:
    """Where and how to connect. ``url`` is ``mqtt://[user:pass@]host[:port]`` (1883) or
    ``mqtts://...`` (8883, TLS), or several of them comma-separated (failover, in order);
    explicit ``username``/``password`` win over the URLs'."""

    url: str = "mqtt://127.0.0.1:1883"
    client_id: str = ""  # empty: a random edgekit-<hex> id
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    tls_insecure: bool = False  # skip host name verification (test rigs only)
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    keepalive: int = 30
    max_inflight: int = 20
    max_payload: int = MAX_PAYLOAD_BYTES
    reconnect_max_s: int = 30
    dispatch_backlog: int = 10_000  # received messages waiting for handlers before drops

    def endpoints(self) -> tuple[Endpoint, ...]:
        """The brokers of ``url``; raises ConfigError with the reason."""
        return parse_broker_urls(self.url)

    def endpoint(self) -> tuple[str, int, bool]:
        """``(host, port, tls)`` of the first broker; raises ConfigError with the reason."""
        first = self.endpoints()[0]
        return first.host, first.port, first.tls

    def validate(self) -> MqttSettings:
        """Check every field; returns self so calls chain."""
        self.endpoint()
        if self.protocol not in ("3.1.1", "5"):
            raise ConfigError(f"MQTT protocol must be '3.1.1' or '5', got {self.protocol!r}")
        for name in ("keepalive", "max_inflight", "max_payload", "reconnect_max_s"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"MQTT {name} must be a positive integer, got {value!r}")
        if self.max_payload > MQTT_MAX_PAYLOAD:
            raise ConfigError(f"MQTT max_payload cannot exceed {MQTT_MAX_PAYLOAD} bytes")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not os.path.isfile(path):
                raise ConfigError(f"MQTT {name} {path!r} does not exist")
        if self.key_file and not self.cert_file:
            raise ConfigError("MQTT key_file needs cert_file")
        if (self.ca_file or self.cert_file) and not self.endpoint()[2]:
            raise ConfigError("TLS files given but the broker URL is not mqtts://")
        if len(self.client_id.encode()) > 65535:
            raise ConfigError("MQTT client_id is too long")
        return self

    def credentials(self, endpoint: Endpoint | None = None) -> tuple[str | None, str | None]:
        """The login for ``endpoint`` (default: the first): explicit, else its URL's."""
        e = endpoint or self.endpoints()[0]
        user = self.username if self.username is not None else e.username
        pw = self.password if self.password is not None else e.password
        return user, pw


class MqttTransport:
    """:class:`Transport` over a real MQTT broker (paho-mqtt 2.x)."""

    def __init__(self, settings: MqttSettings) -> None:
        self.settings = settings.validate()
        self.failover = Failover(settings.endpoints(), cap=float(settings.reconnect_max_s))
        tls = self.failover.current.tls
        self.endpoint_tls = tls
        self.client_id = settings.client_id or f"edgekit-{uuid.uuid4().hex[:12]}"
        self.v5 = settings.protocol == "5"
        self._stats = TransportStats()
        self._lock = threading.RLock()
        self._subs: list[tuple[str, Handler, int]] = []
        self._listeners: list[ConnectListener] = []
        self._connected = threading.Event()
        self._unacked_subs: set[int] = set()  # SUBSCRIBE message ids the broker has not acked
        self._subs_acked = threading.Condition()
        self._closed = False
        self._started = False
        self._will: Will | None = None
        self._cycle_lock = threading.Lock()  # a will re-arm (reconnect) vs. close()
        self._cycling = False
        self.last_error: str | None = None
        self._refused = False  # the last CONNECT was answered with a refusal
        self._wake = threading.Event()  # cuts a failover wait short on close()
        self._inbox: queue.Queue[Any] = queue.Queue(maxsize=settings.dispatch_backlog)
        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name=f"mqtt-dispatch-{self.client_id}", daemon=True
        )
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5 if self.v5 else paho.MQTTv311,
            clean_session=None if self.v5 else True,
        )
        self._client.max_inflight_messages_set(settings.max_inflight)
        # paho's own wait is off: _fail_over waits (jittered) and picks the next broker
        self._client.reconnect_delay_set(min_delay=0, max_delay=0)
        user, pw = settings.credentials(self.failover.current)
        if user is not None:
            self._client.username_pw_set(user, pw)
        if tls:
            try:
                self._client.tls_set(
                    ca_certs=settings.ca_file,
                    certfile=settings.cert_file,
                    keyfile=settings.key_file,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (ssl.SSLError, OSError) as exc:
                raise ConfigError(f"MQTT TLS files cannot be used: {exc}") from exc
            self._client.tls_insecure_set(settings.tls_insecure)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe
        self._client.on_connect_fail = self._on_connect_fail

    # -- Transport API -------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The broker being used (or tried) now."""
        return self.failover.current.host

    @property
    def port(self) -> int:
        return self.failover.current.port

    @property
    def broker(self) -> str:
        """``host:port`` of the broker in use, for logs and status (no password)."""
        return self.failover.current.address

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def stats(self) -> dict[str, int]:
        return self._stats.snapshot()

    def connect(self, will: Will | None = None) -> None:
        with self._lock:
            if self._started or self._closed:
                raise TransportError("connect() may be called once per transport")
            self._started = True
        self._arm(will)
        try:
            self._client.connect_async(self.host, self.port, keepalive=self.settings.keepalive)
        except (OSError, ValueError) as exc:
            raise TransportError(f"cannot connect to {self.broker}: {exc}") from exc
        if not self._dispatcher.is_alive():
            self._dispatcher.start()
        self._client.loop_start()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _arm(self, will: Will | None) -> None:
        """The will paho puts in every later CONNECT packet."""
        if will is None:
            self._client.will_clear()
        else:
            check_topic(will.topic)
            self._client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self._will = will

    def set_will(self, will: Will | None) -> None:
        with self._lock:
            if self._closed or will == self._will:
                return
            self._arm(will)
            live = self._started and self.connected
        if live:  # re-arm now: off the caller's thread (it may be a paho or dispatcher one)
            threading.Thread(target=self._rearm, name="mqtt-rearm-will", daemon=True).start()

    def _rearm(self) -> None:
        """DISCONNECT (the broker discards the old will unpublished), then CONNECT with the
        new one. Messages sent to our subscriptions in between (milliseconds) are lost as in
        any reconnect; the outbox re-sends what was not acknowledged."""
        with self._cycle_lock:
            if self._closed:
                return
            self._cycling = True
            try:
                self._client.disconnect()
                self._client.loop_stop()
                self._connected.clear()
                if not self._closed:
                    # logged first: the CONNACK ("MQTT connected") may be logged any time
                    # after loop_start, and readers of the log expect this order
                    log.info("MQTT reconnecting to %s to re-arm the will", self.broker)
                    self._client.connect_async(
                        self.host, self.port, keepalive=self.settings.keepalive
                    )
                    self._client.loop_start()
            except (OSError, ValueError) as exc:
                log.warning("MQTT will re-arm on %s failed: %s", self.broker, exc)
            finally:
                self._cycling = False

    def wait_subscribed(self, timeout: float) -> bool:
        """True once connected and the broker has acknowledged (SUBACK) every subscription
        sent so far: from then on nothing published to those filters can be missed."""
        end = time.monotonic() + timeout
        if not self._connected.wait(timeout):
            return False
        with self._subs_acked:
            return self._subs_acked.wait_for(
                lambda: not self._unacked_subs, max(0.0, end - time.monotonic())
            )

    def subscribe(self, topic_filter: str, handler: Handler, qos: int = 1) -> None:
        check_filter(topic_filter)
        check_qos(qos)
        with self._lock:
            self._subs.append((topic_filter, handler, qos))
        if self.connected:
            self._send_subscribe(topic_filter, qos)

    def _send_subscribe(self, topic_filter: str, qos: int) -> None:
        with self._subs_acked:
            rc, mid = self._client.subscribe(topic_filter, qos)
            if rc == paho.MQTT_ERR_SUCCESS and mid is not None:
                self._unacked_subs.add(mid)

    def _on_subscribe(self, _client: paho.Client, _userdata: Any, mid: int, *_rest: Any) -> None:
        with self._subs_acked:
            self._unacked_subs.discard(mid)
            self._subs_acked.notify_all()

    def unsubscribe(self, topic_filter: str) -> None:
        with self._lock:
            self._subs = [s for s in self._subs if s[0] != topic_filter]
        if self.connected:
            self._client.unsubscribe(topic_filter)

    def publish(
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False
    ) -> PublishResult | None:
        check_publish(topic, payload, qos, self.settings.max_payload)
        if not self.connected:
            return None
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            log.debug("publish to %s failed: %s", topic, paho.error_string(info.rc))
            return None
        self._stats.add("messages_out")
        return PublishResult(info.mid, lambda timeout: self._wait_info(info, timeout))

    def publish_and_wait(
        self, topic: str, payload: bytes, qos: int = 1, retain: bool = False, timeout: float = 5.0
    ) -> bool:
        result = self.publish(topic, payload, qos, retain)
        return result is not None and result.wait(timeout)

    def add_connect_listener(self, fn: ConnectListener) -> None:
        with self._lock:
            self._listeners.append(fn)

    def close(self, graceful: bool = True, final: Will | None = None) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake.set()  # a failover wait on paho's thread ends now
        with self._cycle_lock:  # not in the middle of a will re-arm
            if graceful:
                if final is not None and self.connected:
                    self.publish_and_wait(final.topic, final.payload, final.qos, final.retain, 5.0)
                self._client.disconnect()
                self._client.loop_stop()
            else:  # like a crash: stop the loop, then drop the socket without DISCONNECT
                self._client.loop_stop()
                sock = self._client.socket()
                if sock is not None:
                    sock.close()
        self._connected.clear()
        if self._dispatcher.is_alive():
            self._inbox.put(_STOP_MARK)
            self._dispatcher.join(timeout=5)

    # -- paho callbacks (network thread: never run user code here) -----------------------

    def _on_connect(
        self, client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:  # paho calls _on_disconnect next, which fails over
            self._refused = True
            self._note(refused_words(reason, self.client_id))
            return
        with self._lock:
            filters: dict[str, int] = {}
            for f, _h, q in self._subs:
                filters[f] = max(q, filters.get(f, 0))
        with self._subs_acked:
            self._unacked_subs.clear()  # a new session: earlier SUBACKs will never come
        for f, q in filters.items():
            self._send_subscribe(f, q)
        self.last_error = None
        self.failover.connected()
        self._stats.add("connects")
        self._connected.set()
        log.info("MQTT connected to %s as %s", self.broker, self.client_id)
        self._enqueue(_CONNECTED_MARK)

    def _on_disconnect(
        self, _client: paho.Client, _userdata: Any, flags: Any, reason: Any, _props: Any
    ) -> None:
        was_connected = self._connected.is_set()
        self._connected.clear()
        refused, self._refused = self._refused, False
        if self._closed or self._cycling:  # our own DISCONNECT
            if was_connected:
                self._stats.add("disconnects")
                log.debug("MQTT disconnected from %s: %s", self.broker, reason)
            return
        from_broker = bool(getattr(flags, "is_disconnect_packet_from_server", False))
        if was_connected:
            self._stats.add("disconnects")
            why = dropped_words(reason, from_broker=from_broker, accepted=True)
            log.warning("MQTT disconnected from %s: %s", self.broker, why)
            self.last_error = why
        elif not refused:  # closed before any CONNACK: e.g. no client certificate
            tls_why = self._tls_failure() if self.endpoint_tls else None
            self._note(tls_why or dropped_words(reason, from_broker=from_broker, accepted=False))
        self._fail_over()

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        why = self._tls_failure() if self.endpoint_tls else None
        if why is not None:  # a broker we do not trust (or that does not trust us)
            self._note(why)
        else:
            self.last_error = f"cannot reach {self.broker}"
            log.debug("MQTT connect to %s failed", self.broker)
        self._fail_over()

    def _note(self, why: str) -> None:
        """Keep and log why the last attempt failed (once per reason, not every retry)."""
        if self.last_error != why:
            log.warning("MQTT %s: %s", self.broker, why)
        self.last_error = why

    def _fail_over(self) -> None:
        """On paho's thread, before its next attempt: move to the next broker of the list and
        wait the jittered back-off (paho's own wait is set to 0). close() cuts the wait."""
        before = self.failover.current
        nxt, delay = self.failover.failed()
        if nxt != before:
            log.info("MQTT trying broker %s next (of %s) in %.1f s",
                     nxt.address, describe(self.failover.endpoints), delay)  # fmt: skip
            user, pw = self.settings.credentials(nxt)  # a login in a URL is that broker's
            if (user, pw) != self.settings.credentials(before):
                self._client.username_pw_set(user, pw)
            try:  # only re-targets the client (its socket is closed already)
                self._client.connect_async(nxt.host, nxt.port, keepalive=self.settings.keepalive)
            except (OSError, ValueError, RuntimeError) as exc:
                log.warning("MQTT cannot switch to %s: %s", nxt.address, exc)
        self._wake.wait(delay)

    def _tls_failure(self) -> str | None:
        s = self.settings
        return tls_failure(self.host, self.port, s.ca_file, s.cert_file, s.key_file,
                           insecure=s.tls_insecure)  # fmt: skip

    def _on_message(self, _client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        if len(msg.payload) > self.settings.max_payload:
            self._stats.add("dropped_oversize")
            log.warning("dropped %d byte message on %s (too large)", len(msg.payload), msg.topic)
            return
        self._stats.add("messages_in")
        self._enqueue((msg.topic, bytes(msg.payload)))

    def _enqueue(self, item: Any) -> None:
        try:
            self._inbox.put_nowait(item)
        except queue.Full:
            self._stats.add("dropped_backlog")
            log.warning("handler backlog full; dropped a message")

    # -- dispatcher thread ---------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        while True:
            item = self._inbox.get()
            if item is _STOP_MARK:
                return
            if item is _CONNECTED_MARK:
                with self._lock:
                    listeners = list(self._listeners)
                for fn in listeners:
                    run_listener(self._stats, fn)
                continue
            topic, payload = item
            with self._lock:
                handlers = [h for f, h, _q in self._subs if topic_matches(f, topic)]
            for h in handlers:
                run_handler(self._stats, h, topic, payload)

    def _wait_info(self, info: paho.MQTTMessageInfo, timeout: float) -> bool:
        """Wait for the PUBACK, giving up early if the connection drops."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                if info.is_published():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.connected:
                    return False
                info.wait_for_publish(min(remaining, 0.05))
        except (RuntimeError, ValueError) as exc:
            log.debug("publish %s not delivered: %s", info.mid, exc)
            return False


def tls_failure(
    host: str,
    port: int,
    ca_file: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    *,
    insecure: bool = False,
) -> str | None:
    """Why a TLS handshake with the broker at ``host:port`` fails, or None when it works
    (or the broker cannot be reached at all): paho reports only that the connection failed,
    so one handshake of our own names the reason (an untrusted or mismatched certificate, a
    client certificate the broker requires)."""
    import socket

    try:
        ctx = ssl.create_default_context(cafile=ca_file)
        if cert_file:
            ctx.load_cert_chain(cert_file, key_file)
        ctx.check_hostname = not insecure
        raw = socket.create_connection((host, port), timeout=2)
        with raw, ctx.wrap_socket(raw, server_hostname=host) as tls:
            tls.recv(1)  # TLS 1.3 refuses a client certificate after the handshake
    except ssl.SSLCertVerificationError as exc:
        return f"TLS: the broker's certificate is not trusted ({exc.verify_message})"
    except ssl.SSLError as exc:
        return f"TLS handshake failed: {exc.reason or exc}"
    except OSError:
        return None
    return None
