"""The ``offline`` will names the model the agent serves: at connect, and again after the
served model changes (the transport is handed a new will; in-memory broker, reference
bundles). The real-broker side is tests/edge/integration/test_agent_ha_and_will.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge import contract as c
from edge.agent import Agent, config
from edge.messaging import MemoryBroker, MemoryTransport
from tests.waiting import wait_for

MODELS = Path(__file__).resolve().parents[3] / "models"
DEV = "will-1"

pytestmark = pytest.mark.skipif(
    not (MODELS / "digits.ekb").exists() or not (MODELS / "tabular.ekb").exists(),
    reason="reference bundles not built (scripts/build_reference_models)",
)


def start(tmp_path: Path, broker: MemoryBroker, **settings: Any) -> Agent:
    cfg = config.load(
        {"device_id": DEV, "data_dir": str(tmp_path),
         "trusted_key": str(MODELS / "dev-signing.pub"), "selftest_time_budget": "0.3",
         "telemetry_interval": "3600", **settings}, environ={},
    )  # fmt: skip
    agent = Agent(cfg, MemoryTransport(broker, "agent"))
    agent.start()
    return agent


def retained_status(broker: MemoryBroker) -> dict[str, Any]:
    raw = broker.retained(c.topic(DEV, c.STATUS))
    assert raw is not None
    return json.loads(raw)


def test_the_will_keeps_the_model_after_a_crash(tmp_path: Path) -> None:
    broker = MemoryBroker()
    agent = start(tmp_path, broker, bundle=str(MODELS / "digits.ekb"))
    online = retained_status(broker)
    assert online["state"] == "online"
    agent.stop(graceful=False)  # like a crash: the broker publishes the will
    offline = retained_status(broker)
    assert offline["state"] == "offline" and offline["boot"] == online["boot"]
    assert offline["model"] == online["model"] and offline["model"]["name"] == "digits"
    c.Status.parse(offline)


def test_the_will_follows_a_model_change(tmp_path: Path) -> None:
    broker = MemoryBroker()
    agent = start(tmp_path, broker, bundle=str(MODELS / "digits.ekb"))
    try:
        agent.installer.provision(MODELS / "tabular.ekb")
        wait_for(lambda: (retained_status(broker).get("model") or {}).get("name") == "tabular")
    finally:
        agent.stop(graceful=False)
    offline = retained_status(broker)
    assert offline["state"] == "offline" and offline["model"]["name"] == "tabular"


def test_a_graceful_stop_says_offline_with_the_model_too(tmp_path: Path) -> None:
    broker = MemoryBroker()
    agent = start(tmp_path, broker, bundle=str(MODELS / "digits.ekb"))
    agent.stop(graceful=True)
    offline = retained_status(broker)
    assert offline["state"] == "offline" and offline["model"]["name"] == "digits"


def test_without_a_model_the_will_says_so(tmp_path: Path) -> None:
    broker = MemoryBroker()
    agent = start(tmp_path, broker)
    agent.stop(graceful=False)
    offline = retained_status(broker)
    assert offline["state"] == "offline" and offline["model"] is None
