"""The input range guard in a real agent serving the checked-in tabular bundle: an absurd
value is served with a warning and counted per feature in published telemetry (``warn``),
or answered with an ``infer/res`` error code ``range`` (``refuse``, also a remote key)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge import contract as c
from edge.agent import Agent, config
from edge.messaging import MemoryBroker, MemoryTransport
from tests.edge.agent.test_agent_reference_bundles import DEV, MODELS, Client
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(
    not (MODELS / "tabular.ekb").exists(), reason="models/tabular.ekb not built"
)


class Watcher(Client):
    """A client that also collects the agent's telemetry and events."""

    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__(broker)
        self.telemetry: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.transport.subscribe(c.topic(DEV, c.TELEMETRY), self._collect(self.telemetry))
        self.transport.subscribe(c.topic(DEV, c.EVENTS), self._collect(self.events))

    @staticmethod
    def _collect(into: list[dict[str, Any]]) -> Any:
        return lambda _topic, payload: into.append(json.loads(payload))


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[Agent, Watcher]]:
    cfg = config.load(
        {"device_id": DEV, "data_dir": str(tmp_path / "data"),
         "bundle": str(MODELS / "tabular.ekb"), "trusted_key": str(MODELS / "dev-signing.pub"),
         "selftest_time_budget": "0.2", "telemetry_interval": "3600",
         "allow_unsigned_commands": "true"},
        environ={},
    )  # fmt: skip
    broker = MemoryBroker()
    running = Agent(cfg, MemoryTransport(broker, DEV))
    running.start()
    try:
        yield running, Watcher(broker)
    finally:
        running.stop()


def _row(agent: Agent, **changes: float) -> dict[str, float]:
    """A typical row: every feature at the middle of its training range."""
    model = agent.server.current
    assert model is not None and model.ranges is not None
    r = model.ranges
    row = {n: r.raw(j, (r.low[j] + r.high[j]) / 2) for j, n in enumerate(r.names)}
    return {**row, **changes}


def test_warn_serves_and_counts_per_feature_in_telemetry(agent: tuple[Agent, Watcher]) -> None:
    running, watcher = agent
    assert "error" not in watcher.infer("ok", _row(running))
    res = watcher.infer("absurd", _row(running, mean_radius=1e30, worst_area=-1e6))
    assert "error" not in res and res["label"] in ("benign", "malignant")  # warn: served
    watcher.infer("absurd2", _row(running, mean_radius=1e30))
    running.publish_telemetry()
    metrics = wait_for(lambda: watcher.telemetry[-1] if watcher.telemetry else None, 10)
    guard = metrics["input_guard"]
    assert guard == {
        "out_of_range": 2,
        "features": {"mean_radius": 2, "worst_area": 1},
        "more_features": 0,
    }
    assert metrics["rejected_inputs"] == {}
    running.publish_telemetry()  # a new interval starts from zero
    wait_for(lambda: len(watcher.telemetry) == 2, 10)
    assert watcher.telemetry[-1]["input_guard"]["out_of_range"] == 0


def test_refuse_answers_a_range_error_naming_the_feature(agent: tuple[Agent, Watcher]) -> None:
    running, watcher = agent
    now = time.time()
    cmd = c.Command(
        id="cfg-1",
        kind="config",
        ts=now,
        expires=now + 60,
        device=DEV,
        nonce=uuid.uuid4().hex,
        config={"input_guard": "refuse"},
    )
    watcher.transport.publish(c.topic(DEV, c.CMD), c.encode_json(cmd.to_dict()), qos=1)
    wait_for(lambda: [e for e in watcher.events if e.get("command") == "cfg-1"], 10)
    assert running.server.input_guard == "refuse"
    res = watcher.infer("absurd", _row(running, mean_radius=1e30))
    assert res["error"]["code"] == "range"
    assert "mean_radius" in res["error"]["message"] and "training range" in res["error"]["message"]
    assert "label" not in res
    assert "error" not in watcher.infer("ok", _row(running))
    running.publish_telemetry()
    metrics = wait_for(lambda: watcher.telemetry[-1] if watcher.telemetry else None, 10)
    assert metrics["rejected_inputs"] == {"range": 1}
    assert metrics["input_guard"]["features"] == {"mean_radius": 1}
