"""A gated rollout across the nodes of a real 3-node NATS cluster (JetStream + MQTT, private
free ports): ``edgekit hub serve`` with every node as a repeated ``--broker`` (first node 2),
two enrolled agents starting on nodes 1 and 3, v2 rolled out in two waves with signed
commands, each agent downloading, self-testing, activating and committing. See
docs/cluster.md."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests import waiting
from tests.edge.brokers import NatsCluster, nats_cluster  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CLI = [sys.executable, "-m", "edge.cli"]
wait_for = functools.partial(waiting.wait_for, interval=0.5)  # HTTP polls: twice a second


def api(url: str, token: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url + "/api/v1" + path, data=data, method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


class Rig:
    """``edgekit hub serve`` on the cluster (every node, first node 2), v1 and v2 uploaded,
    and enrolled agents started with :meth:`agent`."""

    def __init__(self, cluster: NatsCluster, keys: Any, make_bundle: Any, tmp: Path) -> None:
        self.cluster, self.keys, self.tmp = cluster, keys, tmp
        self.data = tmp / "hub"
        n1, n2, n3 = cluster.nodes
        self.hub_log = tmp / "hub.log"
        self.hub = subprocess.Popen(
            [*CLI, "-v", "hub", "serve", "--port", "0", "--data-dir", str(self.data),
             "--broker", n2.url, "--broker", n3.url, "--broker", n1.url,
             "--trusted-key", str(keys[1])],
            stdout=subprocess.PIPE, stderr=self.hub_log.open("w"), text=True,
        )  # fmt: skip
        self.agents: dict[str, subprocess.Popen[bytes]] = {}
        assert self.hub.stdout is not None
        self.url = self.hub.stdout.readline().split()[-1]
        self.token = self.cli("create-token", "--role", "operator")
        self.v1, v2 = make_bundle(1), make_bundle(2)
        for path in (self.v1, v2):
            cmd = [*CLI, "hub", "upload", str(path), "--hub", self.url, "--token", self.token]
            up = subprocess.run(cmd, capture_output=True, text=True)
            assert up.returncode == 0, up.stderr

    def cli(self, *args: str) -> str:
        out = subprocess.run([*CLI, "hub", *args, "--data-dir", str(self.data)],
                             capture_output=True, text=True, check=True)  # fmt: skip
        return out.stdout.strip().splitlines()[-1]

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return api(self.url, self.token, method, path, body)

    def agent(self, dev: str, nodes: list[Any], env: dict[str, str] | None = None) -> None:
        enroll = self.cli("enroll-token", "--tags", "cluster")
        log = (self.tmp / f"{dev}.log").open("w")
        brokers = [arg for n in nodes for arg in ("--broker", n.url)]
        self.agents[dev] = subprocess.Popen(
            [*CLI, "-v", "agent", "run", "--device-id", dev, *brokers,
             "--data-dir", str(self.tmp / dev), "--bundle", str(self.v1),
             "--trusted-key", str(self.keys[1]), "--hub", self.url, "--enroll-token", enroll,
             "--telemetry-interval", "1", "--probation-seconds", "1",
             "--probation-min-inferences", "0", "--selftest-time-budget", "0.2"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
        )  # fmt: skip

    def log_of(self, dev: str) -> str:
        return (self.tmp / f"{dev}.log").read_text(errors="replace")

    def versions(self) -> dict[str, Any]:
        seen = {d["id"]: d for d in self.api("GET", "/devices")}
        return {k: (seen[k]["model"] or {}).get("version") for k in self.agents if k in seen}

    def rollout(self, waves: list[int]) -> str:
        body = {"model": "digits", "version": 2, "target": {"tags": ["cluster"]},
                "waves": waves, "gates": {"p95_latency_ms": None}}  # fmt: skip
        return str(self.api("POST", "/rollouts", body)["id"])

    def ended(self, rid: str) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            r = self.api("GET", f"/rollouts/{rid}")
            return r if r["state"] in ("completed", "paused", "rolled_back", "aborted") else None

        return dict(wait_for(done, 240, "the rollout's end"))

    def close(self) -> None:
        for proc in self.agents.values():
            proc.terminate()
        for proc in self.agents.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.hub.terminate()
        self.hub.wait(15)


def test_gated_rollout_across_nodes(
    nats_cluster: NatsCluster,  # noqa: F811
    keys: Any,
    make_bundle: Any,
    tmp_path: Path,
) -> None:
    n1, n2, n3 = nats_cluster.nodes
    rig = Rig(nats_cluster, keys, make_bundle, tmp_path)
    try:
        rig.agent("nc-a", [n1, n2, n3])
        rig.agent("nc-b", [n3, n1, n2])
        wait_for(lambda: rig.versions() == {"nc-a": 1, "nc-b": 1}, 120, "both agents on v1")
        r = rig.ended(rig.rollout([50, 100]))
        assert r["state"] == "completed", json.dumps(r)[:2000]
        wait_for(lambda: rig.versions() == {"nc-a": 2, "nc-b": 2}, 60, "both agents on v2")
        assert f"hub bridge connected to 127.0.0.1:{n2.port} (MQTT 3.1.1)" in (
            rig.hub_log.read_text()
        )
    finally:
        rig.close()


def test_the_agents_node_killed_during_a_deploy(
    nats_cluster: NatsCluster,  # noqa: F811
    keys: Any,
    make_bundle: Any,
    tmp_path: Path,
) -> None:
    """The agent pauses in ``downloading`` (test hook) and its node (not the hub's) dies:
    the agent moves, finishes the install, its events arrive, the rollout completes."""
    n2 = nats_cluster.nodes[1]  # the hub's node stays up
    n1, n3 = (n for n in nats_cluster.nodes if n is not n2)
    rig = Rig(nats_cluster, keys, make_bundle, tmp_path)
    pause = {"EDGEKIT_TEST_PAUSE_AT": "downloading", "EDGEKIT_TEST_PAUSE_SECONDS": "8"}
    try:
        rig.agent("nc-k", [n1, n3, n2], pause)
        wait_for(lambda: rig.versions() == {"nc-k": 1}, 120, "the agent on v1")
        rid = rig.rollout([100])
        wait_for(lambda: "pausing 8 s at step downloading" in rig.log_of("nc-k"), 60, "pause")
        n1.kill()
        r = rig.ended(rid)
        assert r["state"] == "completed", json.dumps(r)[:2000]
        wait_for(lambda: rig.versions() == {"nc-k": 2}, 60, "the agent on v2")
        events = rig.api("GET", "/devices/nc-k/events?limit=500")
        steps = [e["step"] for e in reversed(events) if e["rollout"] == rid]
        for step in ("downloading", "verifying", "self_test", "activating", "committed"):
            assert step in steps, steps  # every step the agent reported reached the hub
        text = rig.log_of("nc-k")
        assert f"MQTT disconnected from 127.0.0.1:{n1.port}: the connection was lost" in text
        assert any(f"MQTT connected to 127.0.0.1:{n.port}" in text for n in (n2, n3)), text
    finally:
        rig.close()
        if not n1.alive():
            n1.start()
            nats_cluster.wait_ready()
