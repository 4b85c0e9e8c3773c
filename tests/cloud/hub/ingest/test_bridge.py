"""The MQTT bridge through the real Mosquitto on 127.0.0.1:1883, with a real paho
publisher sending contract payloads (and malformed ones) as agents would."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.hub.app import create_app
from cloud.hub.config import HubConfig
from cloud.hub.storage import Device, EventRow, TelemetryRaw
from edge.contract import Command
from tests.cloud.hub import helpers
from tests.services import need_service
from tests.waiting import wait_for

pytestmark = pytest.mark.integration
BROKER = "mqtt://127.0.0.1:1883"


@pytest.fixture
def publisher() -> Iterator[mqtt.Client]:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-pub-{uuid.uuid4().hex[:8]}")
    try:
        c.connect("127.0.0.1", 1883)
    except OSError:
        need_service(False, "no Mosquitto on 127.0.0.1:1883")
    c.loop_start()
    yield c
    c.loop_stop()
    c.disconnect()


def make_hub(tmp_path: Any, keys: Any, consumer: str = "auto", group: str | None = None) -> Any:
    cfg = HubConfig(
        data_dir=tmp_path / f"hub-{uuid.uuid4().hex[:6]}",
        broker_url=BROKER,
        trusted_key=keys[1],
        mqtt_consumer=consumer,
        mqtt_share_group=group or f"test-{uuid.uuid4().hex[:8]}",
        tick_interval_s=0.2,
        bridge_flush_s=0.1,
    )
    app = create_app(cfg)
    hub = app.extensions["edgekit_hub"]
    assert hub.bridge.wait_connected(10)
    return app, hub


def count(hub: Any, model: type) -> int:
    with hub.db.session() as s:
        return s.query(model).count()


def test_bridge_stores_contract_messages_and_survives_malformed_ones(
    tmp_path: Any, keys: Any, publisher: mqtt.Client
) -> None:
    app, hub = make_hub(tmp_path, keys)
    try:
        wait_for(lambda: hub.bridge.mode == "shared")
        dev = f"br-{uuid.uuid4().hex[:8]}"
        t, p = helpers.status(dev)
        publisher.publish(t, p, qos=1, retain=True)
        bad = [
            (f"edgekit/v1/{dev}/telemetry", b"\xff\xfe not json"),
            (f"edgekit/v1/{dev}/telemetry", json.dumps({"schema": "edgekit.telemetry/9"}).encode()),
            (f"edgekit/v1/{dev}/events", b"[1, 2, 3]"),
            (f"edgekit/v1/{dev}/telemetry", b"{" + b" " * (2 << 20) + b"}"),  # 2 MB
        ]
        for topic, payload in bad:
            publisher.publish(topic, payload, qos=1)
        for seq in range(2, 12):
            publisher.publish(*helpers.telemetry(dev, seq), qos=1)
        publisher.publish(*helpers.event(dev, 12, "committed"), qos=1)
        wait_for(lambda: _telemetry_rows(hub, dev) >= 10 and hub.bridge.counters["rejected"] >= 4)
        time.sleep(0.3)
        assert hub.bridge.counters["rejected"] >= 4  # other fleets on the broker may add more
        with hub.db.session() as s:
            d = s.get(Device, dev)
            assert d is not None and d.online and d.model_version == 1
            assert s.query(TelemetryRaw).filter_by(device_id=dev).count() == 10
            assert s.query(EventRow).filter_by(device_id=dev).count() == 1
        # The will (offline) flips the device without forgetting its model.
        publisher.publish(*helpers.status(dev, seq=13, state="offline"), qos=1, retain=True)
        wait_for(lambda: not _device(hub, dev).online)
        text = app.test_client().get("/metrics").data.decode()
        assert 'edgekit_bridge_messages_total{result="rejected"}' in text
    finally:
        publisher.publish(f"edgekit/v1/{dev}/status", b"", retain=True)  # clear retained
        hub.stop()


def _telemetry_rows(hub: Any, dev: str) -> int:
    with hub.db.session() as s:
        return int(s.query(TelemetryRaw).filter_by(device_id=dev).count())


def _device(hub: Any, dev: str) -> Device:
    with hub.db.session() as s:
        d = s.get(Device, dev)
        assert d is not None
        return d


def test_retained_status_reaches_a_hub_that_starts_later(
    tmp_path: Any, keys: Any, publisher: mqtt.Client
) -> None:
    dev = f"ret-{uuid.uuid4().hex[:8]}"
    publisher.publish(*helpers.status(dev, version=3), qos=1, retain=True).wait_for_publish(5)
    _app, hub = make_hub(tmp_path, keys)
    try:
        wait_for(lambda: _exists(hub, dev))
        assert _device(hub, dev).model_version == 3
    finally:
        publisher.publish(f"edgekit/v1/{dev}/status", b"", retain=True)
        hub.stop()


def _exists(hub: Any, dev: str) -> bool:
    with hub.db.session() as s:
        return s.get(Device, dev) is not None


def test_two_workers_share_telemetry_without_duplicates(
    tmp_path: Any, keys: Any, publisher: mqtt.Client
) -> None:
    group = f"test-{uuid.uuid4().hex[:8]}"
    db_url = f"sqlite:///{tmp_path / 'shared.db'}"
    hubs = []
    for i in range(2):
        cfg = HubConfig(
            data_dir=tmp_path / f"w{i}",
            db_url=db_url,
            broker_url=BROKER,
            trusted_key=keys[1],
            mqtt_share_group=group,
            bridge_flush_s=0.1,
        )
        hubs.append(create_app(cfg).extensions["edgekit_hub"])
    try:
        for h in hubs:
            assert h.bridge.wait_connected(10)
            wait_for(lambda: all(x.bridge.mode == "shared" for x in hubs))
        dev = f"sh-{uuid.uuid4().hex[:8]}"
        for seq in range(1, 41):
            publisher.publish(*helpers.telemetry(dev, seq), qos=1)
        wait_for(lambda: _telemetry_rows(hubs[0], dev) >= 40)
        time.sleep(0.5)
        assert _telemetry_rows(hubs[0], dev) == 40
        assert all(h.bridge.counters["stored_telemetry"] > 0 for h in hubs)  # both did work
    finally:
        for h in hubs:
            h.stop()


def test_lease_mode_elects_one_consumer(tmp_path: Any, keys: Any, publisher: mqtt.Client) -> None:
    db_url = f"sqlite:///{tmp_path / 'lease.db'}"
    hubs = []
    for i in range(2):
        cfg = HubConfig(data_dir=tmp_path / f"l{i}", db_url=db_url, broker_url=BROKER,
                        trusted_key=keys[1], mqtt_consumer="lease", bridge_flush_s=0.1)  # fmt: skip
        hubs.append(create_app(cfg).extensions["edgekit_hub"])
    try:
        wait_for(lambda: sum(h.bridge.consuming for h in hubs) == 1)
        consumer = next(h for h in hubs if h.bridge.consuming)
        # the broker acknowledged the consumer's subscription (SUBACK): nothing published
        # from now on can miss it (publishing after a fixed sleep raced the SUBSCRIBE)
        assert consumer.bridge.subscribed.wait(10)
        assert not any(h.bridge.subscribed.is_set() for h in hubs if h is not consumer)
        dev = f"ls-{uuid.uuid4().hex[:8]}"
        for seq in range(1, 21):
            publisher.publish(*helpers.telemetry(dev, seq), qos=1)
        wait_for(lambda: _telemetry_rows(hubs[0], dev) >= 20)
        time.sleep(0.5)
        assert _telemetry_rows(hubs[0], dev) == 20
        assert sorted(h.bridge.counters["stored_telemetry"] for h in hubs) == [0, 20]
    finally:
        for h in hubs:
            h.stop()


def test_rollout_commands_reach_devices_over_mqtt(
    tmp_path: Any, keys: Any, publisher: mqtt.Client, make_bundle: Any
) -> None:
    """A fake-but-real device: it receives the deploy command over MQTT, downloads nothing,
    and reports commit; the rollout completes from those reports."""
    app, hub = make_hub(tmp_path, keys)
    client = app.test_client()
    from cloud.hub.http.auth import create_api_token

    with hub.db.session() as s:
        h = {"Authorization": f"Bearer {create_api_token(s, 'operator')}"}
    for v in (1, 2):
        path = make_bundle(v)
        resp = client.post("/api/v1/models", headers=h, data={"bundle": (path.open("rb"), "b.ekb")})
        assert resp.status_code == 201
    dev = f"ro-{uuid.uuid4().hex[:8]}"
    received: list[Command] = []

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        received.append(Command.parse(json.loads(msg.payload)))

    publisher.on_message = on_message
    publisher.subscribe(f"edgekit/v1/{dev}/cmd", qos=1)
    try:
        publisher.publish(*helpers.status(dev, version=1), qos=1)
        wait_for(lambda: _exists(hub, dev))
        body = {"model": "digits", "version": 2, "target": {"devices": [dev]}}
        rid = client.post("/api/v1/rollouts", json=body, headers=h).get_json()["id"]
        cmd = wait_for(lambda: received[0] if received else None)
        assert cmd.kind == "deploy" and cmd.version == 2 and cmd.rollout == rid
        assert cmd.url is not None and cmd.url.endswith("/api/v1/models/digits/2/bundle")
        publisher.publish(*helpers.status(dev, version=2, seq=5), qos=1)
        publisher.publish(*helpers.event(dev, 6, "committed", rid, cmd.id, 2), qos=1)
        wait_for(
            lambda: (
                client.get(f"/api/v1/rollouts/{rid}", headers=h).get_json()["state"] == "completed"
            )
        )
        r = client.post(f"/api/v1/rollouts/{rid}/rollback", headers=h).get_json()
        assert r["state"] == "rolled_back"
        back = wait_for(lambda: received[1] if len(received) > 1 else None)
        assert back.kind == "rollback" and back.version == 1
        publisher.publish(*helpers.status(dev, version=1, seq=7), qos=1)
        wait_for(
            lambda: (
                client.get(f"/api/v1/rollouts/{rid}", headers=h).get_json()["deployments"][0][
                    "status"
                ]
                == "reverted"
            )
        )
    finally:
        hub.stop()
