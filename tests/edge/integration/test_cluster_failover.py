"""Failover between brokers of a list, on private Mosquittos (fast, deterministic): the agent's
transport skips a dead URL, moves on when its broker stops and says why; the hub's bridge
does the same; the simulator spreads devices over the list."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloud.hub.config import HubConfig
from cloud.hub.ingest import MqttBridge
from cloud.hub.storage import Database
from edge.messaging import MqttSettings, MqttTransport
from tests.edge.brokers import MOSQUITTO, PrivateBroker, free_port
from tests.services import need_service
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration]


@pytest.fixture
def two_brokers(tmp_path: Path) -> Iterator[tuple[PrivateBroker, PrivateBroker]]:
    if not Path(MOSQUITTO).exists():
        need_service(False, "mosquitto is not installed")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = PrivateBroker(tmp_path / "a", free_port()), PrivateBroker(tmp_path / "b", free_port())
    a.start()
    b.start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


def test_transport_skips_a_dead_broker_and_moves_when_its_broker_stops(
    two_brokers: tuple[PrivateBroker, PrivateBroker], caplog: pytest.LogCaptureFixture
) -> None:
    a, b = two_brokers
    dead = f"mqtt://127.0.0.1:{free_port()}"
    t = MqttTransport(MqttSettings(url=f"{dead},{a.url},{b.url}", reconnect_max_s=2))
    connects: list[str] = []
    t.add_connect_listener(lambda: connects.append(t.broker))
    caplog.set_level("INFO", logger="edgekit.transport")
    try:
        t.connect()
        assert t.wait_connected(10), t.last_error
        assert t.broker == f"127.0.0.1:{a.port}"
        wait_for(lambda: connects, 5, "the connect listener")
        a.stop()
        wait_for(lambda: t.broker == f"127.0.0.1:{b.port}" and t.connected, 15, "the move to b")
        wait_for(lambda: len(connects) == 2, 5, "the listener again after the move")
        assert connects == [f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"]
        text = caplog.text
        assert f"MQTT disconnected from 127.0.0.1:{a.port}: the connection was lost" in text
        assert f"MQTT trying broker 127.0.0.1:{b.port} next" in text
        assert t.stats["connects"] == 2 and t.stats["disconnects"] == 1
    finally:
        t.close()


def test_close_cuts_a_failover_wait_short(tmp_path: Path) -> None:
    dead = [f"mqtt://127.0.0.1:{free_port()}" for _ in range(2)]
    t = MqttTransport(MqttSettings(url=",".join(dead), reconnect_max_s=30))
    t.connect()
    # the 5th failure starts a wait of 2-4 s (third round of two brokers); seen within 20 ms
    wait_for(lambda: t.failover.failures >= 5, 30, "a few failed rounds")
    closer = threading.Thread(target=t.close, daemon=True)
    closer.start()
    closer.join(1.0)
    assert not closer.is_alive(), "close() must not wait out the back-off"
    assert t.last_error is not None and "cannot reach" in t.last_error


def test_hub_bridge_fails_over_in_the_list(
    two_brokers: tuple[PrivateBroker, PrivateBroker], tmp_path: Path
) -> None:
    a, b = two_brokers
    dead = f"mqtt://127.0.0.1:{free_port()}"
    cfg = HubConfig(data_dir=tmp_path / "hub", broker_url=f"{dead},{a.url},{b.url}",
                    background=False, mqtt_version="3.1.1")  # fmt: skip
    cfg.ensure_dirs()
    db = Database(cfg.database_url())
    db.migrate()
    bridge = MqttBridge(cfg, db).start()
    try:
        assert bridge.wait_connected(15), bridge.last_error
        assert (bridge.host, bridge.port) == ("127.0.0.1", a.port)
        a.stop()
        wait_for(lambda: bridge.connected.is_set() and bridge.port == b.port, 15, "the move")
    finally:
        bridge.stop()
        db.dispose()


def test_simulator_spreads_devices_and_moves_them_when_a_broker_stops(
    two_brokers: tuple[PrivateBroker, PrivateBroker], tmp_path: Path
) -> None:
    from cloud.sim.fleet import Fleet, FleetSpec
    from tests.edge.integration.test_agent_mqtt import Client

    pub = Path(__file__).resolve().parents[3] / "models" / "dev-signing.pub"
    if not pub.exists():
        pytest.skip("models/dev-signing.pub not built")
    a, b = two_brokers
    ids = [f"simfo-{i}" for i in range(4)]
    watch_a, watch_b = Client(a.port), Client(b.port)
    for w in (watch_a, watch_b):
        w.subscribe("edgekit/v1/+/status")
    dead = f"mqtt://127.0.0.1:{free_port()}"  # device 2 starts there and must move on
    spec = FleetSpec(broker=f"{a.url},{b.url},{dead}", device_ids=ids, trusted_key=str(pub),
                     telemetry_interval=60.0, runtime=None)  # fmt: skip
    fleet = Fleet(spec, tmp_path / "cache")
    runner = threading.Thread(target=fleet.run, kwargs={"duration": 60}, daemon=True)
    runner.start()

    def online_on(w: Client) -> set[str]:
        return {d for d in ids for s in w.on(f"edgekit/v1/{d}/status") if s["state"] == "online"}

    try:
        # device i starts on broker i mod 3; device 2's broker is dead, so it moves to a
        wait_for(lambda: online_on(watch_a) == {ids[0], ids[2], ids[3]}, 15, "0, 2, 3 on a")
        wait_for(lambda: online_on(watch_b) == {ids[1]}, 15, "device 1 on b")
        a.stop()
        wait_for(lambda: online_on(watch_b) == set(ids), 20, "every device on b")
        assert fleet.connected == len(ids)
    finally:
        fleet.stop()
        runner.join(15)
        watch_b.close()
        watch_a.mqtt.loop_stop()
