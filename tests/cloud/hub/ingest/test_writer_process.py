"""cloud/hub/ingest/writer_process.py: batches stored by a child process, counters returned, a
dead child replaced with its batch re-sent, the child stopped with the bridge."""

from __future__ import annotations

import os
import signal
from collections import Counter
from typing import Any

import pytest

from cloud.hub.config import HubConfig
from cloud.hub.ingest import MqttBridge
from cloud.hub.ingest.bridge import Sink
from cloud.hub.storage import TelemetryRaw
from tests.cloud.hub import helpers
from tests.waiting import wait_for


def _rows(hub: Any, device: str) -> int:
    with hub.db.session() as s:
        return s.query(TelemetryRaw).filter_by(device_id=device).count()


@pytest.fixture
def bridge(app: Any) -> Any:
    hub = app.extensions["edgekit_hub"]
    cfg = HubConfig(
        **{**hub.config.__dict__, "broker_url": "mqtt://127.0.0.1:1", "bridge_writer": "process"}
    )
    b = MqttBridge(cfg, hub.db)
    yield b
    b._sink.close()


def test_a_child_process_stores_batches_and_reports_its_counters(app: Any, bridge: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    sink = bridge._sink
    assert sink.pid is not None and sink.pid != os.getpid()
    t1, t2 = helpers.telemetry("wp1", 1), helpers.telemetry("wp1", 2)
    bridge.flush([t1, t2, t1, ("edgekit/v1/wp1/telemetry", b"{not json")])
    assert _rows(hub, "wp1") == 2
    c = bridge.counters
    assert c["stored_telemetry"] == 2 and c["duplicate"] == 1 and c["rejected"] == 1
    bridge.flush([t2])  # the child keeps its de-duplication window between batches
    assert bridge.counters["duplicate"] == 2 and _rows(hub, "wp1") == 2


def test_a_dead_writer_is_replaced_and_the_batch_is_stored(app: Any, bridge: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    sink = bridge._sink
    first = sink.pid
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: not sink._proc.is_alive(), what="the writer to die")
    bridge.flush([helpers.telemetry("wp2", 1), helpers.telemetry("wp2", 2)])
    assert sink.pid != first and bridge.counters["writer_restarts"] == 1
    assert _rows(hub, "wp2") == 2 and bridge.counters["stored_telemetry"] == 2


def test_closing_stops_the_child(bridge: Any) -> None:
    sink = bridge._sink
    proc = sink._proc
    assert proc.is_alive()
    sink.close()
    assert not proc.is_alive() and proc.exitcode == 0  # it finished, it was not killed
    sink.close()  # twice is harmless
    # a batch after close (the bridge's writer thread draining late) starts no new child
    assert sink.flush([helpers.telemetry("wp3", 1)]) == {"lost": 1}
    assert sink._proc is proc and not proc.is_alive()


def test_the_writer_thread_survives_a_failing_batch(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    cfg = HubConfig(**{**hub.config.__dict__, "broker_url": "mqtt://127.0.0.1:1"})
    b = MqttBridge(cfg, hub.db)
    real = b._sink
    calls: list[int] = []

    class Flaky(Sink):
        def flush(self, raw: list[tuple[str, bytes]]) -> Counter[str]:
            calls.append(len(raw))
            if len(calls) == 1:
                raise RuntimeError("a bug in the writer")
            return real.flush(raw)

        def close(self) -> None:
            real.close()

    b._sink = Flaky()
    b._writer.start()
    try:
        b._on_message(None, None, _Msg(*helpers.telemetry("wt1", 1)))  # type: ignore[arg-type]
        wait_for(lambda: b.counters["lost"] == 1, what="the failed batch to be counted")
        b._on_message(None, None, _Msg(*helpers.telemetry("wt1", 2)))  # type: ignore[arg-type]
        wait_for(lambda: _rows(hub, "wt1") == 1, what="the next batch to be stored")
    finally:
        b._stop.set()
        b._writer.join(10)


class _Msg:
    qos, mid = 0, 0  # QoS 0: nothing to acknowledge (a failed batch of them is lost)

    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic, self.payload = topic, payload


def test_bridge_writer_is_validated() -> None:
    from edge.errors import ConfigError

    with pytest.raises(ConfigError, match="bridge_writer"):
        HubConfig(bridge_writer="fork")
