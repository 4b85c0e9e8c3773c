"""The broker killed (SIGKILL) and restarted with a real hub and a real enrolled agent, the
hub coming back *after* the agent (its link to the broker runs through the fault proxy,
dropped until the agent has drained its outbox into the restarted broker: what the agent
sent then waits in the hub's persistent session, or is lost).

* During telemetry: no telemetry the agent produced is lost (the hub's rows plus what is
  still in the agent's outbox are every seq), the retained status is right afterwards.
* During a deploy: the install goes on without the broker, its events reach the hub after
  the restart, the rollout completes and the retained status names the new model.

Both run with the hub on MQTT 5 (its default: ``$share`` subscriptions) and on MQTT 3.1.1
(one consumer elected by lease, plain subscriptions). See docs/faults.md."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge import contract as c
from tests.faults.proxy import FaultProxy
from tests.faults.rig import (
    Agent,
    EventsLost,
    Hub,
    PersistentBroker,
    TelemetryLost,
    assert_no_telemetry_lost,
    highest,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
QUEUED = "edgekit_agent_outbox_messages"
NO_GATES = {"error_rate": None, "drift": None, "accuracy": None, "p95_latency_ms": None}
SHARED_NOT_RESTORED = pytest.mark.xfail(
    raises=(TelemetryLost, EventsLost), strict=True,
    reason="Mosquitto 2.0.11 does not restore $share subscriptions from its persistence file: "
    "what devices publish after a broker crash, before the hub resubscribed, is acknowledged "
    "to them and given to nobody (plain subscriptions are restored: the 3.1.1 case passes)",
)  # fmt: skip


@pytest.fixture
def hub_link(broker: PersistentBroker) -> Iterator[FaultProxy]:
    """The hub's (only) way to the broker; the agent connects to the broker directly."""
    with FaultProxy(broker.port) as p:
        yield p


@pytest.fixture(
    params=[pytest.param(("--mqtt-version", "5"), id="mqtt5-shared", marks=SHARED_NOT_RESTORED),
            pytest.param(("--mqtt-version", "5", "--mqtt-consumer", "lease"), id="mqtt5-lease"),
            pytest.param(("--mqtt-version", "3.1.1"), id="mqtt311-lease")],
)  # fmt: skip
def hub(
    request: pytest.FixtureRequest, tmp_path: Path, hub_link: FaultProxy, keys: Any
) -> Iterator[Hub]:
    h = Hub(tmp_path / "hub", hub_link.url, keys[1], tmp_path / "hub.log",
            extra=request.param)  # fmt: skip
    yield h
    h.stop()


def contiguous(seqs: dict[str, set[int]], boot_min: int) -> bool:
    return any(len(s) >= boot_min and s == set(range(max(s) + 1)) for s in seqs.values())


def retained_status(port: int, device: str) -> dict[str, Any]:
    """The retained status a fresh subscriber gets now."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got: list[dict[str, Any]] = []
    done = threading.Event()
    cl = mqtt.Client(CallbackAPIVersion.VERSION2)

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        if msg.retain and msg.payload:
            got.append(json.loads(msg.payload))
            done.set()

    cl.on_message = on_message
    cl.on_connect = lambda client, *_a: client.subscribe(c.topic(device, c.STATUS), qos=1)
    cl.connect("127.0.0.1", port, keepalive=10)
    cl.loop_start()
    try:
        assert done.wait(10), "no retained status"
        return got[-1]
    finally:
        cl.disconnect()
        cl.loop_stop()


def restart_before_the_hub(broker: PersistentBroker, hub_link: FaultProxy, agent: Agent) -> float:
    """Start the killed broker while the hub cannot reach it; let the hub back in once the
    agent's outbox is empty (everything it held was acknowledged by the broker). Returns
    how long the agent took to drain after the restart."""
    hub_link.partition("drop")
    broker.start()
    started_at = time.monotonic()
    wait_for(lambda: agent.metric(QUEUED) == 0, 60, "the agent draining into the new broker")
    drained = time.monotonic() - started_at
    hub_link.heal()
    return drained


def test_broker_killed_during_telemetry(
    tmp_path: Path, broker: PersistentBroker, hub_link: FaultProxy, hub: Hub, make_bundle: Any
) -> None:
    v1 = make_bundle(1)
    hub.upload(v1)
    agent = Agent(hub, "fb-tel", tmp_path / "fb-tel", broker.url, v1)
    try:
        wait_for(lambda: contiguous(hub.telemetry_seqs("fb-tel"), 3), 90, "telemetry at the hub")
        wait_for(broker.saved, 10, "the broker saving its sessions")
        broker.kill()
        killed_at = time.monotonic()
        wait_for(lambda: "MQTT disconnected" in agent.text(), 30, "the agent noticing")
        noticed = time.monotonic() - killed_at
        # the agent goes on producing telemetry into its outbox (its /metrics says how much)
        wait_for(lambda: (agent.metric(QUEUED) or 0) >= 6, 60, "telemetry piling up")
        held = agent.metric(QUEUED)
        drained = restart_before_the_hub(broker, hub_link, agent)
        healed_at = time.monotonic()
        fresh = highest(hub.telemetry_seqs("fb-tel")) + int(held or 0) + 2
        wait_for(lambda: highest(hub.telemetry_seqs("fb-tel")) >= fresh, 60,
                 "the hub storing telemetry again")  # fmt: skip
        back = time.monotonic() - healed_at
        status = retained_status(broker.port, "fb-tel")
        assert status["state"] == "online" and status["model"]["version"] == 1, status
        assert agent.alive()
    finally:
        agent.stop()
    rows = assert_no_telemetry_lost(hub, agent)  # TelemetryLost names the missing seqs
    print(
        f"\nbroker SIGKILL during telemetry: agent noticed in {noticed:.1f} s, outbox held "
        f"{held:.0f}, drained {drained:.1f} s after the restart; hub storing again "
        f"{back:.1f} s after its link healed; rows per boot {list(rows.values())}; lost 0"
    )


def test_broker_killed_during_a_deploy(
    tmp_path: Path, broker: PersistentBroker, hub_link: FaultProxy, hub: Hub, make_bundle: Any
) -> None:
    v1, v2 = make_bundle(1), make_bundle(2)
    hub.upload(v1)
    hub.upload(v2)
    pause = {"EDGEKIT_TEST_PAUSE_AT": "downloading", "EDGEKIT_TEST_PAUSE_SECONDS": "3"}
    agent = Agent(hub, "fb-dep", tmp_path / "fb-dep", broker.url, v1, env=pause)
    try:
        wait_for(lambda: hub.version_of("fb-dep") == 1, 90, "the agent on v1")
        rid = hub.rollout(2, ["faults"], [100], gates=NO_GATES)
        wait_for(lambda: "pausing 3 s at step downloading" in agent.text(), 60, "the pause")
        assert broker.saved()
        broker.kill()  # the command arrived; the broker dies while the agent installs
        killed_at = time.monotonic()
        wait_for(lambda: "committed digits-2" in agent.text(), 90,
                 "the install to commit without a broker")  # fmt: skip
        committed = time.monotonic() - killed_at
        drained = restart_before_the_hub(broker, hub_link, agent)
        healed_at = time.monotonic()

        def steps() -> list[str]:
            events = hub.api("GET", "/devices/fb-dep/events?limit=500")
            return [e["step"] for e in reversed(events) if e["rollout"] == rid]

        try:
            wait_for(lambda: "committed" in steps(), 60, "the hub storing the commit")
        except AssertionError:
            raise EventsLost(f"deploy events at the hub: {steps()}") from None
        r = hub.rollout_ended(rid, timeout=60)
        completed = time.monotonic() - healed_at
        assert r["state"] == "completed", json.dumps(r)[:2000]
        wait_for(lambda: hub.version_of("fb-dep") == 2, 60, "the hub seeing v2")
        for step in ("downloading", "verifying", "self_test", "activating", "committed"):
            assert step in steps(), steps()
        status = wait_for(
            lambda: (s := retained_status(broker.port, "fb-dep"))["model"]["version"] == 2 and s,
            30, "the retained status naming v2",
        )  # fmt: skip
        assert status["state"] == "online"
    finally:
        agent.stop()
    rows = assert_no_telemetry_lost(hub, agent)
    print(
        f"\nbroker SIGKILL during a deploy: committed without a broker {committed:.1f} s after "
        f"the kill; drained {drained:.1f} s after the restart; rollout completed "
        f"{completed:.1f} s after the hub's link healed; telemetry rows {list(rows.values())}; "
        "lost 0"
    )
