"""A real Mosquitto running the configuration ``edgekit hub broker-config`` generates (its
own listener file does ``include_dir`` of the generated directory), and a paho client that
records what the broker lets through, for the broker-identity tests."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.edge.brokers import PrivateBroker, free_port

PLUGIN = Path("/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so")


class ManagedBroker(PrivateBroker):
    """Mosquitto with one listener of ours and ``include_dir`` of the generated fragment."""

    def __init__(self, workdir: Path, generated: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir, free_port())
        self.generated = generated
        # Started as root, Mosquitto drops to user "mosquitto", which cannot read the 0600
        # dynamic-security file owned by root; "user root" keeps it as the test's user.
        stay = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(f"listener {self.port} 127.0.0.1\n{stay}include_dir {generated}\n")


class Mqtt:
    """One paho connection (MQTT 5 unless asked) that records messages and SUBACK codes."""

    def __init__(
        self, port: int, username: str | None, password: str | None = None, *, v5: bool = True
    ) -> None:
        self.port = port
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Condition()
        self.connack: ReasonCode | None = None
        self.disconnected = threading.Event()
        self.subacks: dict[int, list[ReasonCode]] = {}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect

    def connect(self, timeout: float = 10.0) -> ReasonCode:
        """Connect once (no retries) and return the broker's CONNACK reason."""
        self.client.reconnect_delay_set(3600, 3600)
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        with self.lock:
            assert self.lock.wait_for(lambda: self.connack is not None, timeout), "no CONNACK"
            assert self.connack is not None
            return self.connack

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        with self.lock:
            self.connack = rc
            self.lock.notify_all()

    def _on_disconnect(self, *_args: Any) -> None:
        self.disconnected.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append((msg.topic, bytes(msg.payload)))
            self.lock.notify_all()

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, codes: list[ReasonCode], _p: Any) -> None:
        with self.lock:
            self.subacks[mid] = codes
            self.lock.notify_all()

    def subscribe(self, topic_filter: str, timeout: float = 10.0) -> list[ReasonCode]:
        """Subscribe and wait for the SUBACK; its reason codes."""
        _rc, mid = self.client.subscribe(topic_filter, qos=1)
        assert mid is not None, "not connected"
        with self.lock:
            assert self.lock.wait_for(lambda: mid in self.subacks, timeout), "no SUBACK"
            return self.subacks[mid]

    def publish(self, topic: str, payload: bytes | dict[str, Any], retain: bool = False) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK (also for a dropped message)."""
        data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        self.client.publish(topic, data, qos=1, retain=retain).wait_for_publish(10)

    def wait_message(self, topic: str, marker: bytes, timeout: float = 10.0) -> None:
        with self.lock:
            ok = self.lock.wait_for(lambda: (topic, marker) in self.messages, timeout)
        assert ok, f"{topic} {marker!r} never arrived"

    def topics(self) -> list[str]:
        with self.lock:
            return [t for t, _ in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
