"""The agent says a drift alert itself: a log warning and an event naming the feature when
it starts, and again when it clears; telemetry carries the named features."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge import contract as c
from edge.agent import Agent, config
from edge.messaging import MemoryBroker, MemoryTransport
from tests.bundles import TabularData, make_tabular_bundle
from tests.waiting import wait_for

DEV = "drift-1"


@pytest.fixture(scope="module")
def tabular(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, TabularData]:
    from cloud.keys import generate_keypair

    root = tmp_path_factory.mktemp("drift")
    priv, pub = generate_keypair(root / "keys")
    bundle, data = make_tabular_bundle(root / "sensors.ekb", priv)
    return bundle, pub, data


class Rig:
    def __init__(self, agent: Agent, broker: MemoryBroker, data: TabularData) -> None:
        self.agent, self.data = agent, data
        self.seen: list[tuple[str, dict[str, Any]]] = []
        listener = MemoryTransport(broker, "listener")
        listener.connect()
        for kind in (c.TELEMETRY, c.EVENTS):
            listener.subscribe(c.topic(DEV, kind), self._on_message)

    def _on_message(self, topic: str, payload: bytes) -> None:
        self.seen.append((topic, json.loads(payload)))

    def run(self, n: int, seed: int, shift: dict[int, float] | None = None) -> dict[str, Any]:
        """Predict ``n`` named-feature inputs, publish telemetry, return its drift block."""
        for row in self.data.stream(n, seed, shift):
            self.agent.predict(dict(zip(self.data.names, row.tolist(), strict=True)))
        before = len(self.telemetry())
        self.agent.publish_telemetry()
        wait_for(lambda: len(self.telemetry()) > before, 10, "telemetry")
        return self.telemetry()[-1]["drift"]

    def telemetry(self) -> list[dict[str, Any]]:
        return [p for t, p in self.seen if t.endswith("/telemetry")]

    def events(self) -> list[dict[str, Any]]:
        return [p for t, p in self.seen if t.endswith("/events")]


@pytest.fixture
def rig(tmp_path: Path, tabular: tuple[Path, Path, TabularData]) -> Iterator[Rig]:
    bundle, pub, data = tabular
    cfg = config.load(
        {"device_id": DEV, "data_dir": str(tmp_path / "data"), "bundle": str(bundle),
         "trusted_key": str(pub), "selftest_time_budget": "0.1", "telemetry_interval": "3600"},
        environ={},
    )  # fmt: skip
    broker = MemoryBroker()
    agent = Agent(cfg, MemoryTransport(broker, DEV))
    agent.start()
    try:
        yield Rig(agent, broker, data)
    finally:
        agent.stop()


def test_a_shifted_feature_is_named_in_telemetry_log_and_events(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    assert rig.run(300, seed=1)["alert"] is False  # unshifted: quiet
    caplog.set_level(logging.WARNING, logger="edgekit.agent")
    drift = rig.run(1000, seed=2, shift={11: 2.0})
    assert drift["alert"] is True and "feature" in drift["alert_on"]
    assert drift["worst"]["name"] == "sensor_11" and drift["features"][0]["name"] == "sensor_11"
    started = [r.getMessage() for r in caplog.records if "drift alert:" in r.getMessage()]
    assert len(started) == 1 and "feature sensor_11 PSI" in started[0], started
    alerts = [e for e in rig.events() if e["kind"] == "alert"]
    assert len(alerts) == 1 and "sensor_11" in alerts[0]["message"]
    assert alerts[0]["detail"]["drift"]["worst"]["name"] == "sensor_11"

    rig.run(100, seed=3, shift={11: 2.0})  # still drifting: said once, not every interval
    assert len([e for e in rig.events() if e["kind"] == "alert"]) == 1

    assert rig.run(1000, seed=4)["alert"] is False  # the window refilled with normal data
    cleared = [r.getMessage() for r in caplog.records if "drift alert cleared" in r.getMessage()]
    assert len(cleared) == 1
    assert any(e["message"].startswith("drift alert cleared") for e in rig.events())


def test_a_remote_feature_threshold_reaches_the_alert(rig: Rig) -> None:
    cmd = c.Command(id="cfg-1", kind="config", ts=0.0, expires=0.0, device=DEV,
                    config={"drift_feature_threshold": 9.0})  # fmt: skip
    rig.agent.handle_command(cmd)  # passed the CommandGuard (tested in test_commands.py)
    drift = rig.run(1000, seed=5, shift={11: 2.0})
    assert drift["feature_threshold"] == 9.0
    assert "feature" not in drift["alert_on"] and drift["worst"]["name"] == "sensor_11"
