"""The hub killed (SIGKILL) during a two-wave rollout, right after wave 1's device committed
the new version (its ``committed`` event may or may not be stored yet): the agents keep
serving (``infer/req`` over MQTT answered by both, one already on v2, one still on v1), and
the hub started again on the same database and port resumes the rollout from it and
completes it, deploying wave 2 exactly once. See docs/faults.md."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.bundles import raw_digit
from tests.edge.brokers import MOSQUITTO
from tests.faults.rig import Agent, Hub, Mqtt, PersistentBroker
from tests.services import need_service
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
NO_GATES = {"error_rate": None, "drift": None, "accuracy": None, "p95_latency_ms": None}


def test_hub_down_mid_rollout(tmp_path: Path, keys: Any, make_bundle: Any) -> None:
    if not Path(MOSQUITTO).exists():
        need_service(False, "mosquitto is not installed")
    broker = PersistentBroker(tmp_path / "broker")
    broker.start()
    hub = Hub(tmp_path / "hub", broker.url, keys[1], tmp_path / "hub.log")
    agents: dict[str, Agent] = {}
    observer = Mqtt(broker.port)
    try:
        v1, v2 = make_bundle(1), make_bundle(2)
        hub.upload(v1)
        hub.upload(v2)
        for dev in ("hd-a", "hd-b"):
            agents[dev] = Agent(hub, dev, tmp_path / dev, broker.url, v1)
        both = set(agents)
        wait_for(lambda: {d for d in both if hub.version_of(d) == 1} == both, 120, "both on v1")
        rid = hub.rollout(2, ["faults"], [50, 100], soak_seconds=6, gates=NO_GATES)

        def wave_one() -> list[str]:
            return [d for d, a in agents.items() if "committed digits-2" in a.text()]

        (first,) = wait_for(wave_one, 120, "wave 1's device committing v2", interval=0.05)
        (second,) = both - {first}
        hub.kill()  # within wave 1's 6 s soak: nothing in the hub's memory survives
        down_at = time.monotonic()
        trips = {}
        for dev, version in ((first, 2), (second, 1)):
            res = observer.infer(dev, f"while-down-{dev}", raw_digit())
            assert res["version"] == version and res["label"], res
            trips[dev] = round(res["round_trip_s"] * 1000, 1)
        hub.start()  # same data dir (SQLite), same port: the agents' hub URL stays right
        up_at = time.monotonic()
        r = hub.rollout_ended(rid, timeout=120)
        done_at = time.monotonic()
        assert r["state"] == "completed", json.dumps(r)[:2000]
        wait_for(lambda: all(hub.version_of(d) == 2 for d in both), 60, "both on v2")
        events = hub.api("GET", f"/devices/{second}/events?limit=500")
        steps = [e["step"] for e in reversed(events) if e["rollout"] == rid]
        assert steps.count("committed") == 1, steps  # wave 2 deployed once, after the restart
        first_steps = [
            e["step"]
            for e in hub.api("GET", f"/devices/{first}/events?limit=500")
            if e["rollout"] == rid
        ]
        assert "committed" in first_steps, first_steps  # redelivered if it was in flight
        assert all(a.alive() for a in agents.values())
        print(
            f"\nhub down {up_at - down_at:.1f} s; inference while down (ms): {trips}; "
            f"restart to rollout completed: {done_at - up_at:.1f} s"
        )
    finally:
        observer.close()
        for a in agents.values():
            a.stop()
        hub.stop()
        broker.stop()
