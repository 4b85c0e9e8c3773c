"""The embedded broker really speaks MQTT: retained messages and the last will."""

from __future__ import annotations

import threading
import time

import pytest

from cloud.demo.broker import EmbeddedBroker, free_port, wait_for_port

mqtt = pytest.importorskip("paho.mqtt.client")
pytest.importorskip("amqtt")


def _client(port: int, cid: str, got: list[tuple[str, bytes, bool]] | None = None) -> object:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid)
    if got is not None:
        lock = threading.Lock()

        def on_message(_c: object, _u: object, m: object) -> None:
            with lock:
                got.append((m.topic, m.payload, bool(m.retain)))  # type: ignore[attr-defined]

        c.on_message = on_message
    return c


@pytest.mark.slow
def test_embedded_broker_retains_and_fires_will() -> None:
    with EmbeddedBroker() as broker:
        got: list[tuple[str, bytes, bool]] = []
        dev = _client(broker.port, "dev")
        dev.will_set("t/dev/status", b"offline", qos=1, retain=True)  # type: ignore[attr-defined]
        dev.connect(broker.host, broker.port)  # type: ignore[attr-defined]
        dev.loop_start()  # type: ignore[attr-defined]
        dev.publish("t/dev/status", b"online", qos=1, retain=True).wait_for_publish(5)  # type: ignore[attr-defined]
        sub = _client(broker.port, "sub", got)
        sub.connect(broker.host, broker.port)  # type: ignore[attr-defined]
        sub.loop_start()  # type: ignore[attr-defined]
        sub.subscribe("t/#", qos=1)  # type: ignore[attr-defined]
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        assert got[0] == ("t/dev/status", b"online", True)
        # A dropped socket (no DISCONNECT) makes the broker publish the will.
        dev._sock.close()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while not any(p == b"offline" for _, p, _ in got) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(p == b"offline" for _, p, _ in got)
        sub.loop_stop()  # type: ignore[attr-defined]
        dev.loop_stop()  # type: ignore[attr-defined]
    assert not wait_for_port("127.0.0.1", broker.port, 0.5)


def test_free_port_is_bindable() -> None:
    port = free_port()
    assert 1024 < port < 65536
    assert not wait_for_port("127.0.0.1", port, 0.2)
