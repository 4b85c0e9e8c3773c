"""Transport semantics: the in-memory broker, settings validation, and the real Mosquitto."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from edge.errors import ConfigError, TransportError
from edge.messaging import (
    MemoryBroker,
    MemoryTransport,
    MqttSettings,
    MqttTransport,
    Transport,
    Will,
    topic_matches,
)
from edge.messaging.protocol import check_filter
from tests.edge.brokers import PrivateBroker, private_broker  # noqa: F401 - fixture

# --------------------------------------------------------------------------- helpers


class Inbox:
    """Collects (topic, payload) from a handler and waits for them."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()

    def __call__(self, topic: str, payload: bytes) -> None:
        with self._cond:
            self.items.append((topic, payload))
            self._cond.notify_all()

    def wait_for(self, pred: Callable[[list[tuple[str, bytes]]], bool], timeout: float = 5) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: pred(self.items), timeout)

    def payloads(self) -> list[bytes]:
        with self._cond:
            return [p for _t, p in self.items]


def wait_until(pred: Callable[[], bool], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def unique(prefix: str = "test") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------- pure helpers


@pytest.mark.parametrize(
    ("flt", "topic", "match"),
    [
        ("a/b", "a/b", True),
        ("a/+", "a/b", True),
        ("a/+", "a/b/c", False),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("#", "a/b", True),
        ("+/+/status", "edgekit/x/status", True),
        ("+/status", "edgekit/x/status", False),
        ("edgekit/v1/+/status", "edgekit/v1/cam/status", True),
        ("edgekit/v1/+/infer/#", "edgekit/v1/cam/infer/req", True),
        ("#", "$SYS/broker", False),
        ("a/b", "a/b/c", False),
    ],
)
def test_topic_matches(flt: str, topic: str, match: bool) -> None:
    assert topic_matches(flt, topic) is match


@pytest.mark.parametrize("bad", ["", "a/#/b", "a/b#", "a/+b", "x\0"])
def test_bad_filters_refused(bad: str) -> None:
    with pytest.raises(TransportError):
        check_filter(bad)


# --------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    "kwargs",
    [
        {"url": "http://127.0.0.1:1883"},
        {"url": "mqtt://"},
        {"url": "mqtt://host:99999"},
        {"url": "mqtt://host/path"},
        {"url": "mqtt://host:notaport"},
        {"protocol": "4"},
        {"keepalive": 0},
        {"max_inflight": -1},
        {"url": "mqtts://h", "ca_file": "/nonexistent/ca.pem"},
    ],
)
def test_bad_settings_raise_config_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        MqttSettings(**kwargs).validate()  # type: ignore[arg-type]


def test_tls_files_need_mqtts(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(ConfigError, match="mqtts"):
        MqttSettings(url="mqtt://h", ca_file=str(ca)).validate()


def test_settings_endpoint_and_credentials() -> None:
    s = MqttSettings(url="mqtts://al%40x:s3cret@broker.local").validate()
    assert s.endpoint() == ("broker.local", 8883, True)
    assert s.credentials() == ("al@x", "s3cret")
    s2 = MqttSettings(url="mqtt://u:p@h:1999", username="other", password="pw")
    assert s2.endpoint() == ("h", 1999, False)
    assert s2.credentials() == ("other", "pw")


# --------------------------------------------------------------------------- memory


def test_memory_transport_satisfies_protocol() -> None:
    assert isinstance(MemoryTransport(MemoryBroker()), Transport)


def test_memory_wildcards_and_retained() -> None:
    broker = MemoryBroker()
    pub = MemoryTransport(broker, "pub")
    pub.connect()
    pub.publish("edgekit/v1/a/status", b"online-a", qos=1, retain=True)
    pub.publish("edgekit/v1/b/status", b"online-b", qos=1, retain=True)
    pub.publish("edgekit/v1/a/telemetry", b"t1")  # not retained: lost for late subscribers

    sub = MemoryTransport(broker, "sub")
    inbox = Inbox()
    sub.subscribe("edgekit/v1/+/status", inbox)
    sub.connect()
    assert sorted(inbox.payloads()) == [b"online-a", b"online-b"]

    pub.publish("edgekit/v1/a/status", b"", retain=True)  # clears the retained message
    assert broker.retained("edgekit/v1/a/status") is None
    later = MemoryTransport(broker, "later")
    late_inbox = Inbox()
    later.connect()
    later.subscribe("edgekit/v1/#", late_inbox)
    assert late_inbox.payloads() == [b"online-b"]


def test_memory_will_only_on_crash() -> None:
    broker = MemoryBroker()
    watcher = MemoryTransport(broker, "w")
    inbox = Inbox()
    watcher.subscribe("dev/+/status", inbox)
    watcher.connect()

    graceful = MemoryTransport(broker, "g")
    graceful.connect(Will("dev/g/status", b"offline"))
    graceful.close(graceful=True)
    assert inbox.payloads() == []

    polite = MemoryTransport(broker, "p")
    polite.connect(Will("dev/p/status", b"offline"))
    polite.close(graceful=True, final=Will("dev/p/status", b"bye"))
    assert inbox.payloads() == [b"bye"]

    crashed = MemoryTransport(broker, "c")
    crashed.connect(Will("dev/c/status", b"offline"))
    crashed.close(graceful=False)
    assert inbox.items[-1] == ("dev/c/status", b"offline")
    assert broker.retained("dev/c/status") == b"offline"


def test_memory_handler_errors_are_counted_not_fatal() -> None:
    broker = MemoryBroker()
    t = MemoryTransport(broker)
    inbox = Inbox()

    def boom(_topic: str, _payload: bytes) -> None:
        raise RuntimeError("handler bug")

    t.subscribe("x/#", boom)
    t.subscribe("x/#", inbox)
    t.connect()
    for i in range(3):
        assert t.publish_and_wait("x/y", b"%d" % i)
    assert inbox.payloads() == [b"0", b"1", b"2"]
    assert t.stats["handler_errors"] == 3
    assert t.stats["messages_in"] == 3


def test_memory_outage_and_resubscribe() -> None:
    broker = MemoryBroker()
    t = MemoryTransport(broker)
    inbox = Inbox()
    connects: list[int] = []
    t.add_connect_listener(lambda: connects.append(1))
    t.subscribe("a/#", inbox)
    t.connect()
    assert t.wait_connected(0) and connects == [1]

    broker.down()
    assert not t.connected
    assert t.publish("a/b", b"lost") is None
    assert not t.publish_and_wait("a/b", b"lost")

    other = MemoryTransport(broker, "other")
    other.connect()  # connects only when the broker is up again
    assert not other.connected
    broker.up()
    assert t.connected and other.connected and connects == [1, 1]
    assert other.publish_and_wait("a/c", b"after")
    assert inbox.payloads() == [b"after"]


def test_memory_oversize_publish_refused() -> None:
    t = MemoryTransport(MemoryBroker(), max_payload=100)
    t.connect()
    with pytest.raises(TransportError, match="exceeds"):
        t.publish("a", b"x" * 101)
    with pytest.raises(TransportError):
        t.publish("a/+", b"wildcards are not topics")


def test_mqtt_refuses_a_bad_publish_even_while_offline() -> None:
    """The same rules as the memory transport, checked before paho sees anything."""
    t = mqtt(max_payload=100)
    with pytest.raises(TransportError, match="101 bytes exceeds the 100 byte limit"):
        t.publish("a", b"x" * 101)
    with pytest.raises(TransportError, match="invalid publish topic"):
        t.publish("a/#", b"")
    with pytest.raises(TransportError, match="QoS"):
        t.publish("a", b"", qos=3)
    assert t.publish("a", b"x" * 100) is None  # valid, but not connected


# --------------------------------------------------------------------------- real Mosquitto


def mqtt(url: str = "mqtt://127.0.0.1:1883", **kw: object) -> MqttTransport:
    return MqttTransport(MqttSettings(url=url, **kw))  # type: ignore[arg-type]


@pytest.mark.integration
def test_mqtt_round_trip_and_handler_errors() -> None:
    base = unique()
    sub, pub = mqtt(), mqtt()
    inbox = Inbox()

    def broken(_topic: str, _payload: bytes) -> None:
        raise ZeroDivisionError("handler bug")

    sub.subscribe(f"{base}/#", broken)
    sub.subscribe(f"{base}/#", inbox)
    sub.connect()
    pub.connect()
    try:
        assert sub.wait_connected(5) and pub.wait_connected(5)
        time.sleep(0.2)  # SUBACK
        for i in range(5):
            assert pub.publish_and_wait(f"{base}/n", b"%d" % i, qos=1, timeout=5)
        assert inbox.wait_for(lambda items: len(items) == 5)
        assert inbox.payloads() == [b"0", b"1", b"2", b"3", b"4"]
        assert wait_until(lambda: sub.stats["handler_errors"] == 5)
        assert pub.stats["messages_out"] == 5
    finally:
        sub.close()
        pub.close()


@pytest.mark.integration
def test_mqtt_retained_status_and_will() -> None:
    base = unique()
    status = f"{base}/status"
    agent = mqtt()
    agent.connect(Will(status, b"offline", qos=1, retain=True))
    assert agent.wait_connected(5)
    assert agent.publish_and_wait(status, b"online", qos=1, retain=True)

    late = mqtt()
    inbox = Inbox()
    late.subscribe(status, inbox)
    late.connect()
    try:
        assert inbox.wait_for(lambda items: items == [(status, b"online")])
        agent.close(graceful=False)  # a crash: the broker publishes the will
        assert inbox.wait_for(lambda items: len(items) == 2, timeout=10)
        assert inbox.items[-1] == (status, b"offline")
    finally:
        late.close()
        cleanup = mqtt()
        cleanup.connect()
        cleanup.wait_connected(5)
        cleanup.publish_and_wait(status, b"", retain=True)
        cleanup.close()


@pytest.mark.integration
def test_mqtt_graceful_close_sends_final_not_will() -> None:
    base = unique()
    status = f"{base}/status"
    watcher = mqtt()
    inbox = Inbox()
    watcher.subscribe(status, inbox)
    watcher.connect()
    agent = mqtt()
    agent.connect(Will(status, b"will", retain=False))
    try:
        assert watcher.wait_subscribed(5) and agent.wait_connected(5)
        agent.close(graceful=True, final=Will(status, b"goodbye", retain=False))
        assert inbox.wait_for(lambda items: len(items) >= 1)
        time.sleep(0.5)
        assert inbox.payloads() == [b"goodbye"]
    finally:
        watcher.close()


@pytest.mark.integration
def test_mqtt_oversize_incoming_dropped_and_loop_survives() -> None:
    base = unique()
    sub, pub = mqtt(max_payload=1024), mqtt()
    inbox = Inbox()
    sub.subscribe(f"{base}/#", inbox)
    sub.connect()
    pub.connect()
    try:
        assert sub.wait_subscribed(5) and pub.wait_connected(5)
        assert pub.publish_and_wait(f"{base}/big", b"x" * 200_000)
        assert pub.publish_and_wait(f"{base}/small", b"ok")
        assert inbox.wait_for(lambda items: len(items) == 1)
        assert inbox.items == [(f"{base}/small", b"ok")]
        assert sub.stats["dropped_oversize"] == 1
        with pytest.raises(TransportError):
            sub.publish(f"{base}/big", b"x" * 2000)
    finally:
        sub.close()
        pub.close()


@pytest.mark.integration
def test_mqtt_v5_round_trip() -> None:
    base = unique()
    t = mqtt(protocol="5")
    inbox = Inbox()
    t.subscribe(f"{base}/#", inbox)
    t.connect()
    try:
        assert t.wait_subscribed(5)
        assert t.publish_and_wait(f"{base}/v5", b"five")
        assert inbox.wait_for(lambda items: items == [(f"{base}/v5", b"five")])
    finally:
        t.close()


@pytest.mark.integration
def test_mqtt_offline_publish_is_refused_not_queued() -> None:
    t = mqtt(url="mqtt://127.0.0.1:1")  # nothing listens on port 1
    t.connect()
    try:
        assert not t.wait_connected(0.5)
        assert t.publish("a/b", b"x", qos=1) is None
        assert not t.publish_and_wait("a/b", b"x", timeout=0.2)
    finally:
        t.close()


@pytest.mark.integration
@pytest.mark.slow
def test_mqtt_reconnects_and_resubscribes(private_broker: PrivateBroker) -> None:  # noqa: F811
    base = unique()
    t = mqtt(private_broker.url, reconnect_max_s=1)
    inbox = Inbox()
    connects: list[float] = []
    t.add_connect_listener(lambda: connects.append(time.monotonic()))
    t.subscribe(f"{base}/#", inbox)
    t.connect()
    try:
        assert t.wait_connected(5)
        assert wait_until(lambda: len(connects) == 1)
        private_broker.stop()
        assert wait_until(lambda: not t.connected)
        assert not t.publish_and_wait(f"{base}/x", b"during outage", timeout=0.5)
        private_broker.start()
        assert t.wait_connected(15)
        assert wait_until(lambda: len(connects) == 2)
        time.sleep(0.2)  # SUBACK of the re-sent subscription
        other = mqtt(private_broker.url)
        other.connect()
        assert other.wait_connected(5)
        assert other.publish_and_wait(f"{base}/y", b"after restart")
        other.close()
        assert inbox.wait_for(lambda items: (f"{base}/y", b"after restart") in items)
        assert t.stats["disconnects"] == 1 and t.stats["connects"] == 2
    finally:
        t.close()


def _make_pki(d: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: str,
        signer: ec.EllipticCurvePrivateKey, ca: bool,
        san: list[x509.GeneralName] | None = None,
    ) -> x509.Certificate:  # fmt: skip
        b = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(issuer))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            b = b.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return b.sign(signer, hashes.SHA256())

    out: dict[str, Path] = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = cert("edgekit test CA", ca_key, "edgekit test CA", ca_key, True)
    san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    for label, c_key, c_cert in [("ca", ca_key, ca)] + [
        (lbl, k, cert(lbl, k, "edgekit test CA", ca_key, False, san))
        for lbl, k in [
            (lbl, ec.generate_private_key(ec.SECP256R1())) for lbl in ("server", "client")
        ]
    ]:
        out[f"{label}_cert"] = d / f"{label}.pem"
        out[f"{label}_cert"].write_bytes(c_cert.public_bytes(serialization.Encoding.PEM))
        out[f"{label}_key"] = d / f"{label}.key"
        out[f"{label}_key"].write_bytes(
            c_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    return out


@pytest.mark.integration
def test_mqtts_with_ca_and_client_certificate(tmp_path: Path) -> None:
    import shutil
    import tempfile

    from tests.edge.brokers import free_port

    # mosquitto started as root drops to its own user, which cannot enter pytest's 0700 dirs
    shared = Path(tempfile.mkdtemp(prefix="edgekit-pki-"))
    shared.chmod(0o755)
    pki = _make_pki(shared)
    for f in shared.iterdir():
        f.chmod(0o644)  # throw-away test keys
    port = free_port()
    extra = (
        f"cafile {pki['ca_cert']}\ncertfile {pki['server_cert']}\nkeyfile {pki['server_key']}\n"
        "require_certificate true\n"
    )
    broker = PrivateBroker(tmp_path, port, extra=extra)
    broker.start()
    url = f"mqtts://127.0.0.1:{port}"
    good = mqtt(url, ca_file=str(pki["ca_cert"]), cert_file=str(pki["client_cert"]),
                key_file=str(pki["client_key"]))  # fmt: skip
    no_client_cert = mqtt(url, ca_file=str(pki["ca_cert"]))
    inbox = Inbox()
    good.subscribe("tls/#", inbox)
    try:
        good.connect()
        no_client_cert.connect()
        assert good.wait_subscribed(10)
        assert good.publish_and_wait("tls/x", b"secret")
        assert inbox.wait_for(lambda items: items == [("tls/x", b"secret")])
        assert not no_client_cert.wait_connected(1.5)  # the broker demands a certificate
    finally:
        good.close()
        no_client_cert.close()
        broker.stop()
        shutil.rmtree(shared, ignore_errors=True)


@pytest.mark.integration
def test_refused_credentials_are_reported_not_fatal(tmp_path: Path) -> None:
    from tests.edge.brokers import free_port

    broker = PrivateBroker(tmp_path, free_port(), anonymous=False)
    broker.start()
    t = mqtt(broker.url, username="nobody", password="wrong")
    try:
        t.connect()
        assert not t.wait_connected(2)
        assert wait_until(lambda: t.last_error is not None, 5)
        assert "refused" in str(t.last_error) or "reach" in str(t.last_error)
        with pytest.raises(TransportError, match="once"):
            t.connect()
    finally:
        t.close()
        broker.stop()


@pytest.mark.integration
def test_wait_subscribed_waits_for_the_brokers_suback() -> None:
    base = unique()
    t = mqtt()
    t.connect()
    try:
        assert t.wait_connected(5)
        assert t.wait_subscribed(5)  # nothing subscribed yet: nothing to wait for
        inbox = Inbox()
        t.subscribe(f"{base}/#", inbox)
        assert t.wait_subscribed(5) and not t._unacked_subs
        assert t.publish_and_wait(f"{base}/x", b"1")
        assert inbox.wait_for(lambda items: items == [(f"{base}/x", b"1")])
    finally:
        t.close()
    assert not mqtt().wait_subscribed(0.2)  # never connected
