"""The embedded demo broker with authentication on: it checks logins against the hub's
database and enforces the same per-account topics as the generated Mosquitto config."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.demo.broker import EmbeddedBroker
from cloud.demo.broker_auth import DEMO_HUB_SECRET, DEMO_HUB_USERNAME, topic_matches
from cloud.hub.broker import hash_password
from cloud.hub.storage import Database, Device, secrets
from edge.contract import topic

pytest.importorskip("amqtt")
from tests.cloud.hub.broker.managed import Mqtt

pytestmark = pytest.mark.slow
HUB_PW = "hub-secret-for-tests"
DEV_PW = "device-secret-for-tests"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'hub.db'}")
    database.migrate()
    with database.session() as s:
        secrets.get_or_create(s, DEMO_HUB_SECRET, lambda: HUB_PW)
        for dev in ("d1", "d2"):
            s.add(Device(id=dev, tags=[], first_seen=time.time(), capabilities={}, kpis={},
                         enrolled=True, mqtt_secret=hash_password(DEV_PW)))  # fmt: skip
    yield database
    database.dispose()


@pytest.fixture
def broker(db: Database, tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(db_url=db.url, log_path=tmp_path / "broker.log") as b:
        yield b


def _login(broker: EmbeddedBroker, user: str | None, pw: str | None = None) -> Mqtt:
    m = Mqtt(broker.port, user, pw, v5=False)
    m.connect()
    return m


def test_logins(broker: EmbeddedBroker, db: Database, tmp_path: Path) -> None:
    cases = [(None, None), ("d1", "wrong"), ("nobody", DEV_PW), (DEMO_HUB_USERNAME, "wrong"),
             ("d1", None)]  # fmt: skip
    for user, pw in cases:
        m = _login(broker, user, pw)
        assert m.connack is not None and m.connack.is_failure, (user, pw)
        m.close()
    for user, pw in (("d1", DEV_PW), (DEMO_HUB_USERNAME, HUB_PW)):
        m = _login(broker, user, pw)
        assert m.connack is not None and not m.connack.is_failure, user
        m.close()
    with db.session() as s:  # revocation applies at the next login
        dev = s.get(Device, "d1")
        assert dev is not None
        dev.revoked = time.time()
    m = _login(broker, "d1", DEV_PW)
    assert m.connack is not None and m.connack.is_failure
    m.close()
    log = (tmp_path / "broker.log").read_text()
    assert "d1: wrong password" in log and "anonymous clients are refused" in log
    assert "d1: revoked" in log


def test_each_account_uses_only_its_own_topics(broker: EmbeddedBroker) -> None:
    hub = _login(broker, DEMO_HUB_USERNAME, HUB_PW)
    d1, d2 = _login(broker, "d1", DEV_PW), _login(broker, "d2", DEV_PW)
    try:
        assert [c.value for c in hub.subscribe("edgekit/v1/+/telemetry")] == [1]
        assert [c.value for c in hub.subscribe("edgekit/v1/+/status")] == [1]
        assert [c.value for c in d1.subscribe(topic("d1", "cmd"))] == [1]
        assert d1.subscribe(topic("d2", "cmd"))[0].is_failure  # another device's inbox
        assert d1.subscribe("edgekit/v1/+/telemetry")[0].is_failure
        assert d1.subscribe("#")[0].is_failure
        d1.publish(topic("d2", "status"), b"forged")  # dropped by the broker
        d1.publish(topic("d1", "cmd"), b"self-command")  # devices never write commands
        d1.publish(topic("d1", "telemetry"), b"genuine")
        hub.wait_message(topic("d1", "telemetry"), b"genuine")
        hub.publish(topic("d1", "cmd"), b"from-hub")
        d1.wait_message(topic("d1", "cmd"), b"from-hub")
        d2.publish(topic("d2", "status"), b"d2-own")
        hub.wait_message(topic("d2", "status"), b"d2-own")  # after the forged one, in order
        assert (topic("d2", "status"), b"forged") not in hub.messages
        assert (topic("d1", "cmd"), b"self-command") not in d1.messages
    finally:
        for m in (hub, d1, d2):
            m.close()


def test_topic_matching() -> None:
    assert topic_matches("edgekit/v1/a/cmd", "edgekit/v1/+/cmd")
    assert topic_matches("edgekit/v1/+/cmd", "edgekit/v1/+/cmd")
    assert not topic_matches("edgekit/v1/+/cmd", "edgekit/v1/a/cmd")
    assert not topic_matches("edgekit/v1/a/#", "edgekit/v1/a/cmd")
    assert not topic_matches("edgekit/v1/a/cmd/x", "edgekit/v1/a/cmd")
    assert not topic_matches("edgekit/v1/a", "edgekit/v1/a/cmd")
    assert topic_matches("a/b/c", "a/#")
