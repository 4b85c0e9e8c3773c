"""The bridge speaks MQTT 5 and 3.1.1: against the demo's embedded amqtt broker (3.1.1
only, so ``auto`` must fall back) and the real Mosquitto (5 by default, 3.1.1 when forced).
Each broker gets the whole path: retained status, will, telemetry, events, commands out."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.hub.app import create_app
from cloud.hub.config import HubConfig
from cloud.hub.storage import Device, EventRow, TelemetryRaw
from edge.contract import Command
from edge.errors import ConfigError
from tests.cloud.hub import helpers
from tests.services import need_service
from tests.waiting import wait_for

pytestmark = pytest.mark.integration
MOSQUITTO = "mqtt://127.0.0.1:1883"

# A stand-in agent process: retained online status, an offline will; SIGKILL fires the will.
AGENT = textwrap.dedent(
    """
    import sys, time
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    host, port, topic, online, offline = sys.argv[1:6]
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="agent-" + topic.split("/")[2])
    c.will_set(topic, offline, qos=1, retain=True)
    c.connect(host, int(port), keepalive=5)
    c.loop_start()
    c.publish(topic, online, qos=1, retain=True).wait_for_publish(10)
    print("ready", flush=True)
    time.sleep(600)
    """
)


@pytest.fixture(params=["amqtt-auto", "mosquitto-auto", "mosquitto-3.1.1"])
def broker(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, str]]:
    """(broker URL, configured mqtt_version, protocol the bridge must end up with)."""
    if request.param.startswith("amqtt"):
        from cloud.demo.broker import EmbeddedBroker

        with EmbeddedBroker() as b:
            yield b.url, "auto", "3.1.1"
        return
    probe = mqtt.Client(CallbackAPIVersion.VERSION2)
    try:
        probe.connect("127.0.0.1", 1883)
        probe.disconnect()
    except OSError:
        need_service(False, "no Mosquitto on 127.0.0.1:1883")
    version = request.param.removeprefix("mosquitto-")
    yield MOSQUITTO, version, "5" if version == "auto" else "3.1.1"


def _client(url: str) -> mqtt.Client:
    u = urlparse(url)
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
    c.connect(u.hostname or "", u.port or 1883)
    c.loop_start()
    return c


def _device(hub: Any, dev: str) -> Device | None:
    with hub.db.session() as s:
        d = s.get(Device, dev)
        if d is not None:
            s.expunge(d)
        return d


def _count(hub: Any, model: type, dev: str) -> int:
    with hub.db.session() as s:
        return int(s.query(model).filter_by(device_id=dev).count())


def test_bridge_ingests_and_publishes_on_either_protocol(
    tmp_path: Any, keys: Any, broker: tuple[str, str, str]
) -> None:
    url, version, expected = broker
    u = urlparse(url)
    dev = f"pv-{uuid.uuid4().hex[:8]}"
    status_topic, online = helpers.status(dev, version=2)
    _t, offline = helpers.status(dev, version=2, seq=2, state="offline")
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, u.hostname or "", str(u.port), status_topic,
         online.decode(), offline.decode()],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    pub = _client(url)
    hub = None
    try:
        assert agent.stdout is not None and agent.stdout.readline().strip() == "ready"
        cfg = HubConfig(data_dir=tmp_path / "hub", broker_url=url, trusted_key=keys[1],
                        mqtt_version=version, mqtt_share_group=f"t-{uuid.uuid4().hex[:8]}",
                        bridge_flush_s=0.1)  # fmt: skip
        hub = create_app(cfg).extensions["edgekit_hub"]
        assert hub.bridge.wait_connected(20)
        assert hub.bridge.protocol == expected
        wait_for(lambda: hub.bridge.consuming)
        assert hub.bridge.mode == ("shared" if expected == "5" else "lease")

        # retained status published before the hub started
        d = wait_for(lambda: _device(hub, dev))
        assert d.online and d.model_version == 2
        # lease mode subscribes after the election: wait for the broker's SUBACK
        assert hub.bridge.subscribed.wait(10)
        for seq in range(3, 13):
            pub.publish(*helpers.telemetry(dev, seq, version=2), qos=1)
        pub.publish(*helpers.telemetry(dev, 3, version=2), qos=1)  # duplicate
        pub.publish(*helpers.event(dev, 13, "committed"), qos=1)
        pub.publish(f"edgekit/v1/{dev}/telemetry", b"not json", qos=1)
        wait_for(lambda: _count(hub, TelemetryRaw, dev) >= 10 and _count(hub, EventRow, dev))
        time.sleep(0.3)
        assert _count(hub, TelemetryRaw, dev) == 10
        assert _count(hub, EventRow, dev) == 1

        # commands go out
        got: list[Command] = []
        pub.on_message = lambda _c, _u, m: got.append(Command.parse(json.loads(m.payload)))
        pub.subscribe(f"edgekit/v1/{dev}/cmd", qos=1)
        time.sleep(0.3)
        now = time.time()
        cmd = Command(kind="rollback", id=uuid.uuid4().hex, ts=now, expires=now + 60,
                      device=dev, name="digits", version=1)  # fmt: skip
        hub.bridge.publish_command(dev, cmd)
        assert wait_for(lambda: got)[0].id == cmd.id

        # the will: the agent dies without a DISCONNECT
        agent.send_signal(signal.SIGKILL)
        wait_for(lambda: not _device(hub, dev).online)  # type: ignore[union-attr]
        assert _device(hub, dev).model_version == 2  # type: ignore[union-attr]
    finally:
        agent.kill()
        agent.wait()
        pub.publish(status_topic, b"", qos=1, retain=True).wait_for_publish(5)
        pub.loop_stop()
        pub.disconnect()
        if hub is not None:
            hub.stop()


def test_mqtt_version_is_validated() -> None:
    with pytest.raises(ConfigError, match="mqtt_version"):
        HubConfig(mqtt_version="4")
    with pytest.raises(ConfigError, match="MQTT 5"):
        HubConfig(mqtt_version="3.1.1", mqtt_consumer="shared")
