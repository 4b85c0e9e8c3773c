"""MQTT over TLS against a real Mosquitto TLS listener of our own (certificates from the
test CA): the agent's transport and the hub's bridge connect through their configuration,
a client trusting another CA is refused with a reason, and a listener that requires client
certificates lets in only clients that present one."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.hub.config import HubConfig
from cloud.hub.ingest import MqttBridge
from cloud.hub.storage import Database
from cloud.tls import CertAuthority, make_ca
from edge.agent.agent import mqtt_transport
from edge.agent.config import AgentConfig
from edge.messaging import MqttTransport
from tests.edge.brokers import MOSQUITTO, PrivateBroker, free_port
from tests.services import need_service
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


class TlsBroker(PrivateBroker):
    """Mosquitto with one TLS listener using the test CA's server certificate."""

    def __init__(self, workdir: Path, ca: CertAuthority, require_certificate: bool = False) -> None:
        super().__init__(workdir, free_port())
        self.url = f"mqtts://localhost:{self.port}"
        # As root Mosquitto drops to user "mosquitto", which cannot read the 0600 key.
        stay = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n{stay}"
            f"cafile {ca.ca_cert}\ncertfile {ca.server_cert}\nkeyfile {ca.server_key}\n"
            f"require_certificate {'true' if require_certificate else 'false'}\n"
        )


@pytest.fixture
def ca(tmp_path: Path) -> CertAuthority:
    need_service(Path(MOSQUITTO).exists(), "mosquitto is not installed")
    return make_ca(tmp_path / "ca", clients=["tls-dev", "hub"])


def _broker(tmp_path: Path, ca: CertAuthority, require: bool) -> Iterator[TlsBroker]:
    work = tmp_path / ("mtls" if require else "tls")
    work.mkdir()
    broker = TlsBroker(work, ca, require)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def tls_broker(tmp_path: Path, ca: CertAuthority) -> Iterator[TlsBroker]:
    yield from _broker(tmp_path, ca, False)


@pytest.fixture
def mtls_broker(tmp_path: Path, ca: CertAuthority) -> Iterator[TlsBroker]:
    yield from _broker(tmp_path, ca, True)


def _agent(tmp_path: Path, url: str, ca_file: Path, pair: tuple[Path, Path] | None = None,
           device: str = "tls-dev") -> MqttTransport:  # fmt: skip
    cert, key = pair if pair else (None, None)
    cfg = AgentConfig(device_id=device, data_dir=tmp_path / device, broker=url, ca_file=ca_file,
                      cert_file=cert, key_file=key)  # fmt: skip
    transport = mqtt_transport(cfg)
    assert isinstance(transport, MqttTransport)
    return transport


def _bridge(tmp_path: Path, url: str, ca: CertAuthority, client: bool = False) -> MqttBridge:
    db = Database(f"sqlite:///{tmp_path / 'hub.db'}")
    db.migrate()
    cert, key = ca.clients["hub"] if client else (None, None)
    cfg = HubConfig(data_dir=tmp_path, broker_url=url, mqtt_ca_file=ca.ca_cert,
                    mqtt_cert_file=cert, mqtt_key_file=key, background=False)  # fmt: skip
    return MqttBridge(cfg, db)


def _connects(transport: MqttTransport) -> bool:
    transport.connect()
    try:
        ok = transport.wait_connected(10)
        if ok:  # a real round trip through the broker, acknowledged
            assert transport.publish_and_wait("edgekit/v1/tls-dev/events", b"{}", qos=1)
        return ok
    finally:
        transport.close()


def _refused(transport: MqttTransport, timeout: float = 10.0) -> str:
    """Wait for the transport to record why it cannot connect; that reason."""
    transport.connect()
    try:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (transport.last_error or "").startswith("TLS"):
            assert not transport.connected
            time.sleep(0.05)
        assert not transport.connected
        return transport.last_error or ""
    finally:
        transport.close()


def test_agent_and_hub_connect_over_tls(
    tmp_path: Path, ca: CertAuthority, tls_broker: TlsBroker
) -> None:
    assert _connects(_agent(tmp_path, tls_broker.url, ca.ca_cert))
    bridge = _bridge(tmp_path, tls_broker.url, ca).start()
    try:
        assert bridge.tls and bridge.wait_connected(10)
    finally:
        bridge.stop()


def test_a_client_trusting_another_ca_is_refused(
    tmp_path: Path, ca: CertAuthority, tls_broker: TlsBroker
) -> None:
    other = make_ca(tmp_path / "other")
    why = _refused(_agent(tmp_path, tls_broker.url, other.ca_cert))
    assert why.startswith("TLS: the broker's certificate is not trusted"), why
    bridge = _bridge(tmp_path, tls_broker.url, CertAuthority(other.ca_cert, other.ca_key,
                     other.server_cert, other.server_key, ca.clients)).start()  # fmt: skip
    try:
        assert not bridge.wait_connected(3)
        why = wait_for(lambda: bridge.last_error, 20, "the bridge naming the TLS failure")
        assert why.startswith("TLS: the broker's certificate is not trusted"), why
    finally:
        bridge.stop()


def test_wrong_server_name_is_refused(
    tmp_path: Path, ca: CertAuthority, tls_broker: TlsBroker
) -> None:
    """The certificate names localhost and 127.0.0.1; another name for the same host fails."""
    url = f"mqtts://{os.uname().nodename}:{tls_broker.port}"
    why = _refused(_agent(tmp_path, url, ca.ca_cert))
    assert "not trusted" in why or "cannot reach" in why


def test_required_client_certificates(
    tmp_path: Path, ca: CertAuthority, mtls_broker: TlsBroker
) -> None:
    url = mtls_broker.url
    assert _connects(_agent(tmp_path, url, ca.ca_cert, ca.clients["tls-dev"]))
    why = _refused(_agent(tmp_path, url, ca.ca_cert, device="no-cert"))
    assert why.startswith("TLS handshake failed"), why
    bridge = _bridge(tmp_path, url, ca, client=True).start()
    try:
        assert bridge.wait_connected(10)
    finally:
        bridge.stop()
    (tmp_path / "nocert").mkdir()
    without = _bridge(tmp_path / "nocert", url, ca).start()
    try:
        assert not without.wait_connected(3)
    finally:
        without.stop()
