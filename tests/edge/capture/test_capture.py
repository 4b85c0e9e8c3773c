"""Capture in a real agent serving the checked-in bundles: each reason end to end, the
bounds, a request that survives a restart, upload through a hub outage, and nothing at
all while the policy is off."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.agent import Agent, config
from edge.agent.metrics import render
from edge.contract import Command
from edge.messaging import MemoryBroker, MemoryTransport
from edge.runtime.inputs import ImageBytes
from tests.bundles import raw_digit
from tests.edge.agent_kit import kit_fixture  # noqa: F401 - pytest fixture "kit"
from tests.edge.capture.hubs import SampleHub
from tests.waiting import wait_for

MODELS = Path(__file__).resolve().parents[3] / "models"
DEV = "cap-1"
QUIET = {"low_confidence": 0.0, "wrong_label": False, "out_of_range": False, "drift": False}

Start = Callable[..., Agent]


@pytest.fixture
def hub() -> Iterator[SampleHub]:
    h = SampleHub()
    yield h
    h.close()


@pytest.fixture
def start(tmp_path: Path, hub: SampleHub) -> Iterator[Start]:
    """Start an agent on a checked-in bundle with a capture policy, enrolled with ``hub``."""
    running: list[Agent] = []
    data = tmp_path / "data"
    data.mkdir()
    (data / "credentials.json").write_text(json.dumps({"token": "dev-token", "hub": hub.url}))

    def start_agent(bundle: str = "tabular", capture: dict[str, Any] | None = None) -> Agent:
        settings = {"device_id": DEV, "data_dir": str(data),
                    "bundle": str(MODELS / f"{bundle}.ekb"),
                    "trusted_key": str(MODELS / "dev-signing.pub"),
                    "selftest_time_budget": "0.2", "telemetry_interval": "3600"}  # fmt: skip
        if capture is not None:
            settings["capture"] = json.dumps({"upload_interval": 0.2, **capture})
        agent = Agent(config.load(settings, environ={}), MemoryTransport(MemoryBroker(), DEV))
        agent.start()
        running.append(agent)
        return agent

    yield start_agent
    for agent in running:
        if agent.started:
            agent.stop(graceful=False)


def stop(agent: Agent) -> None:
    agent.stop(graceful=False)
    agent.started = False


def row(agent: Agent, **changes: float) -> dict[str, float]:
    model = agent.server.current
    assert model is not None and model.ranges is not None
    r = model.ranges
    out = {n: r.raw(j, (r.low[j] + r.high[j]) / 2) for j, n in enumerate(r.names)}
    return {**out, **changes}


def stored(hub: SampleHub, n: int) -> list[dict[str, Any]]:
    wait_for(lambda: len(hub.stored) >= n, what=f"{n} samples at the hub")
    return list(hub.stored.values())


def test_nothing_is_captured_while_off(start: Start, hub: SampleHub) -> None:
    agent = start()  # the default policy: off
    assert agent.server.sampler is None and not agent.cfg.capture.enabled
    label = agent.predict(row(agent)).label
    for i in range(20):
        agent.predict(row(agent, mean_radius=1e30), label="x" if i % 2 else label)
    assert agent.capture.flush()
    assert agent.capture.stats()["captured"] == 0
    assert not list((agent.cfg.data_dir / "capture" / "samples").iterdir())
    assert hub.requests == []


def test_out_of_range_and_wrong_label(start: Start, hub: SampleHub) -> None:
    agent = start(capture={"enabled": True, "low_confidence": 0.0})
    right = agent.predict(row(agent)).label
    wrong = "benign" if right == "malignant" else "malignant"
    assert agent.predict(row(agent), label=right).label == right  # nothing of interest
    agent.predict(row(agent, mean_radius=1e30))
    agent.predict(row(agent), label=wrong)
    samples = sorted(stored(hub, 2), key=lambda s: s["captured_at"])
    assert [s["reason"] for s in samples] == ["out_of_range", "wrong_label"]
    features = samples[0]["input"]["features"]
    assert samples[0]["input"]["kind"] == "tabular" and features["mean_radius"] == pytest.approx(
        1e30, rel=1e-6
    )
    assert set(features) == set(row(agent))
    assert samples[1]["known_label"] == wrong and samples[1]["prediction"]["label"] == right
    served = agent.server.current
    assert served is not None
    assert samples[1]["model"] == {"name": served.name, "version": served.version}
    wait_for(lambda: agent.capture.stats()["uploaded"] == 2, what="the hub's answer settled")
    stats = agent.capture.stats()
    assert stats["captured"] == 2 and stats["pending"] == 0


def test_low_confidence_png_and_rate_limit(start: Start, hub: SampleHub) -> None:
    agent = start("digits", capture={"enabled": True, "low_confidence": 1.0,
                                     "max_per_minute": 3})  # fmt: skip
    raws = [np.asarray(raw_digit(i), dtype=np.float32) for i in range(10)]
    for raw in raws:
        agent.predict(raw)
    samples = sorted(stored(hub, 3), key=lambda s: s["captured_at"])
    assert agent.capture.flush()
    assert len(hub.stored) == 3 and agent.capture.stats()["rate_limited"] == 7
    assert {s["reason"] for s in samples} == {"low_confidence"}
    model = agent.server.current
    assert model is not None
    for sample, raw in zip(samples, raws, strict=False):
        png = base64.b64decode(sample["input"]["data"])
        assert sample["input"]["media_type"] == "image/png" and png.startswith(b"\x89PNG")
        # the PNG gives the model the same input back (up to 8-bit rounding)
        again = model.prepare(ImageBytes(png, "sample.png"))
        assert np.abs(again - model.prepare(raw)).max() <= 1 / 255 + 1e-6
        assert max(sample["prediction"]["scores"]) < 1.0


def test_drift_and_random(start: Start, hub: SampleHub) -> None:
    agent = start(capture={"enabled": True, **QUIET, "drift": True})
    agent.predict(row(agent))
    agent.reporter.last_drift = {"alert": True}  # what the last telemetry interval said
    agent.predict(row(agent))
    assert [s["reason"] for s in stored(hub, 1)] == ["drift"]
    cmd = Command(id="c-random", kind="config", ts=time.time(), expires=time.time() + 60,
                  config={"capture": {"drift": False, "random": 1.0}})  # fmt: skip
    agent.handle_command(cmd)
    agent.predict(row(agent))
    assert sorted(s["reason"] for s in stored(hub, 2)) == ["drift", "random"]


def test_requested_next_survives_a_restart(start: Start, hub: SampleHub) -> None:
    agent = start(capture={"enabled": True, **QUIET})
    cmd = Command(id="c-next", kind="config", ts=time.time(), expires=time.time() + 60,
                  config={"capture": {"next": 5}})  # fmt: skip
    agent.handle_command(cmd)
    for _ in range(2):
        agent.predict(row(agent))
    assert agent.capture.flush() and agent.capture.stats()["requested"] == 3
    stop(agent)
    again = start(capture={"enabled": True, **QUIET})
    assert again.capture.stats()["requested"] == 3
    for _ in range(6):
        again.predict(row(again))
    samples = stored(hub, 5)
    assert again.capture.flush()
    assert len(hub.stored) == 5 and {s["reason"] for s in samples} == {"requested"}
    assert again.capture.stats()["requested"] == 0


def test_disk_budget_then_hub_outage_and_resume(start: Start, hub: SampleHub) -> None:
    """The hub is away: samples wait on disk within the budget (oldest dropped, counted),
    survive a restart, and go up once the hub is back."""
    port = hub.port
    hub.close()
    agent = start(
        "digits", capture={"enabled": True, "low_confidence": 1.0, "max_mb": 0.004}
    )  # ~4 KiB: room for a few samples
    for i in range(12):
        agent.predict(np.asarray(raw_digit(i), dtype=np.float32))
    assert agent.capture.flush()
    stats = agent.capture.stats()
    assert stats["captured"] == 12 and stats["dropped"] > 0
    assert stats["pending"] == 12 - stats["dropped"] and stats["pending_bytes"] <= 4194
    assert "unreachable" in (wait_for(lambda: agent.capture.stats()["upload_error"]) or "")
    kept = stats["pending"]
    stop(agent)
    back = SampleHub(port=port)
    try:
        again = start("digits", capture={"enabled": True, "low_confidence": 1.0,
                                         "max_mb": 0.004})  # fmt: skip
        wait_for(lambda: len(back.stored) == kept, what="the kept samples uploaded")
        wait_for(lambda: again.capture.stats()["pending"] == 0)
        assert again.capture.stats()["uploaded"] == kept
    finally:
        back.close()


def test_counters_in_telemetry_and_metrics(start: Start, hub: SampleHub) -> None:
    agent = start(capture={"enabled": True, **QUIET, "random": 1.0})
    agent.predict(row(agent))
    stored(hub, 1)
    wait_for(lambda: agent.capture.stats()["uploaded"] == 1)
    agent.publish_telemetry()
    messages = agent.outbox.pending()
    telemetry = json.loads(next(m.payload for m in messages if m.topic.endswith("telemetry")))
    assert telemetry["capture"]["captured"] == 1 and telemetry["capture"]["uploaded"] == 1
    assert telemetry["capture"]["enabled"] is True and telemetry["capture"]["pending"] == 0
    text = render(agent).decode()
    assert 'edgekit_agent_capture_samples_total{outcome="captured"} 1.0' in text
    assert "edgekit_agent_capture_enabled 1.0" in text


def test_shadow_disagreement(tmp_path: Path, kit: dict[str, Path]) -> None:
    """A deploy with a shadow run: inputs on which the candidate disagrees are kept with the
    candidate's version and answer."""
    import contextlib
    import threading

    from tests.edge.agent.test_agent import Rig

    rig = Rig(tmp_path, kit)
    try:
        agent = rig.start(bundle=str(kit["v1"]), shadow_inputs="20",
                          capture=json.dumps({"enabled": True, **QUIET}))  # fmt: skip
        cid = rig.deploy(kit["v2"], 2)
        stop_feeding = threading.Event()

        def feed() -> None:
            i = 0
            while not stop_feeding.is_set():
                with contextlib.suppress(Exception):
                    agent.predict(np.asarray(raw_digit(i), dtype=np.float32))
                i += 1
                stop_feeding.wait(0.01)

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        try:
            shadow = rig.wait_event("shadow", timeout=60, command=cid)
        finally:
            stop_feeding.set()
            feeder.join()
        assert shadow["detail"]["agreement"] < 1.0  # two differently seeded models
        assert agent.capture.flush()
        kept = agent.capture.store.pending(64)
        assert kept and {s.reason for s in kept} == {"shadow_disagreement"}
        assert all(s.shadow_version == 2 and s.shadow_label != s.label for s in kept)
        assert all(s.model_version == 1 and s.input.kind == "image" for s in kept)
    finally:
        rig.close()
