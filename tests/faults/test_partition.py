"""A network partition and added latency between a real agent and its broker, made by the
fault proxy (agent <-> FaultProxy <-> private Mosquitto; the observer is on the broker
directly). Partitioned (held: a black hole; dropped: connections reset), the agent and the
broker both notice within the keepalive (2 s here), the agent's outbox holds the telemetry,
and after the heal every seq reaches the observer. With 300 ms added each way, inference
over MQTT still answers (a round trip of at least 600 ms) and telemetry keeps flowing
without a reconnect. See docs/faults.md."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge import contract as c
from tests.bundles import raw_digit
from tests.faults.proxy import FaultProxy
from tests.faults.rig import (
    Agent,
    Mqtt,
    PersistentBroker,
    contiguous_to,
    highest,
    outbox_telemetry_seqs,
    seqs_seen,
)
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
QUEUED = "edgekit_agent_outbox_messages"
KEEPALIVE = "2"


@pytest.fixture
def proxy(broker: PersistentBroker) -> Iterator[FaultProxy]:
    with FaultProxy(broker.port) as p:
        yield p


def start_agent(tmp_path: Path, device: str, proxy: FaultProxy, bundle: Path, key: Path) -> Agent:
    agent = Agent(None, device, tmp_path / device, proxy.url, bundle, "--keepalive", KEEPALIVE,
                  trusted_key=key)  # fmt: skip
    return agent


@pytest.mark.parametrize("how", ["hold", "drop"])
def test_partition_during_telemetry(
    tmp_path: Path, proxy: FaultProxy, observer: Mqtt, keys: Any, make_bundle: Any, how: str
) -> None:
    dev = f"fp-{how}"
    observer.subscribe(c.topic(dev, c.TELEMETRY))
    observer.subscribe(c.topic(dev, c.STATUS))
    agent = start_agent(tmp_path, dev, proxy, make_bundle(1), keys[1])
    try:
        wait_for(lambda: highest(seqs_seen(observer, dev)) >= 2, 60, "telemetry flowing")
        wait_for(lambda: agent.metric(QUEUED) == 0, 20, "an empty outbox")
        proxy.partition(how)
        cut_at = time.monotonic()
        wait_for(lambda: "MQTT disconnected" in agent.text(), 15, "the agent noticing")
        agent_noticed = time.monotonic() - cut_at

        def offline() -> bool:
            return any(s.get("state") == "offline" for s in observer.on(c.topic(dev, c.STATUS)))

        wait_for(offline, 15, "the broker publishing the agent's will")
        broker_noticed = time.monotonic() - cut_at
        last_before = highest(seqs_seen(observer, dev))
        wait_for(lambda: (agent.metric(QUEUED) or 0) >= 6, 30, "the outbox holding telemetry")
        held = agent.metric(QUEUED)
        assert highest(seqs_seen(observer, dev)) == last_before  # nothing leaks through
        proxy.heal()
        healed_at = time.monotonic()
        produced = last_before + int(held or 0)
        wait_for(lambda: contiguous_to(seqs_seen(observer, dev), produced), 30,
                 "every held seq after the heal")  # fmt: skip
        caught_up = time.monotonic() - healed_at
        wait_for(lambda: agent.metric(QUEUED) == 0, 20, "the outbox drained")
        assert agent.alive()
    finally:
        agent.stop()
    seen, queued = seqs_seen(observer, dev), outbox_telemetry_seqs(agent.data)
    for boot in set(seen) | set(queued):
        got = seen.get(boot, set()) | queued.get(boot, set())
        assert got == set(range(max(got) + 1)), f"seqs lost in boot {boot}"
    print(
        f"\npartition ({how}): agent noticed in {agent_noticed:.1f} s, broker (will) in "
        f"{broker_noticed:.1f} s; outbox held {held:.0f}; all seqs at the observer "
        f"{caught_up:.1f} s after the heal; lost 0"
    )


def test_latency(
    tmp_path: Path, proxy: FaultProxy, observer: Mqtt, keys: Any, make_bundle: Any
) -> None:
    dev = "fp-slow"
    observer.subscribe(c.topic(dev, c.TELEMETRY))
    agent = start_agent(tmp_path, dev, proxy, make_bundle(1), keys[1])
    try:
        wait_for(lambda: highest(seqs_seen(observer, dev)) >= 1, 60, "telemetry flowing")
        fast = observer.infer(dev, "fast", raw_digit())["round_trip_s"]
        proxy.latency(up=0.3, down=0.3)
        slow = [observer.infer(dev, f"slow-{i}", raw_digit(i), timeout=15) for i in range(3)]
        for res in slow:
            assert res["version"] == 1 and res["label"], res
            assert 0.6 <= res["round_trip_s"] < 5, res  # both legs through the proxy
        now = highest(seqs_seen(observer, dev))
        wait_for(lambda: contiguous_to(seqs_seen(observer, dev), now + 6), 30,
                 "telemetry flowing with the added latency")  # fmt: skip
        # keepalive 2 s with a 600 ms round trip: no reconnect, no will
        assert "MQTT disconnected" not in agent.text()
        assert agent.alive()
    finally:
        agent.stop()
    trips = ", ".join(f"{r['round_trip_s'] * 1000:.0f}" for r in slow)
    print(f"\nlatency 300 ms each way: infer round trip {fast * 1000:.0f} ms -> {trips} ms")
