"""End to end: the hub and two real agents (subprocesses) on a private Mosquitto that runs
the configuration ``edgekit hub broker-config`` wrote (anonymous off, one account and ACL
per device, the hub's own account), with the hub on SQLite and on the machine's PostgreSQL
(a throw-away schema).

Agents enroll (and so get their broker account and the hub's command key), start on v1,
the hub rolls v2 out in two waves with signed commands (each agent downloads the bundle
from the hub's origin with its device token, self-tests, activates and commits), then rolls
it back.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import waiting
from tests.cloud.hub.broker.conftest import have_mosquitto
from tests.cloud.hub.broker.managed import ManagedBroker
from tests.cloud.hub.pg_schema import throwaway_schema

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CLI = [sys.executable, "-m", "edge.cli"]
AGENTS = ("e2e-a", "e2e-b")
wait_for = functools.partial(waiting.wait_for, interval=0.5)  # HTTP polls: twice a second


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def __call__(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + "/api/v1" + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_args(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """``--db`` arguments for every hub command: none (SQLite in the data dir), or a fresh
    PostgreSQL schema selected through ``search_path`` and dropped afterwards."""
    if request.param == "sqlite":
        yield []
        return
    with throwaway_schema("e2e") as url:
        yield ["--db", url]


@pytest.fixture
def broker(tmp_path: Path, db_args: list[str]) -> Iterator[ManagedBroker]:
    """Mosquitto running what ``edgekit hub broker-config`` generated from the hub's DB."""
    have_mosquitto()
    out = tmp_path / "broker-conf"
    subprocess.run(
        [*CLI, "hub", "broker-config", "--data-dir", str(tmp_path / "hub"), *db_args,
         "--out", str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    managed = ManagedBroker(tmp_path / "mosquitto", out)
    managed.start()
    try:
        yield managed
    finally:
        managed.stop()


@pytest.fixture
def hub(
    tmp_path: Path, keys: Any, db_args: list[str], broker: ManagedBroker
) -> Iterator[tuple[Api, Any]]:
    data = tmp_path / "hub"
    proc = subprocess.Popen(
        [*CLI, "hub", "serve", "--port", "0", "--data-dir", str(data), *db_args,
         "--broker", broker.url, "--trusted-key", str(keys[1])],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().split()[-1]

    def cli(*args: str) -> str:
        out = subprocess.run([*CLI, "hub", *args, "--data-dir", str(data), *db_args],
                             capture_output=True, text=True, check=True)  # fmt: skip
        return out.stdout.strip().splitlines()[-1]

    token = cli("create-token", "--role", "operator")
    try:
        # Enrollment tokens are one-time: each agent gets its own.
        yield Api(url, token), lambda: cli("enroll-token", "--tags", "e2e")
    finally:
        proc.terminate()
        proc.wait(15)


def test_rollout_and_rollback_with_real_agents(
    hub: tuple[Api, Any], keys: Any, make_bundle: Any, tmp_path: Path, broker: ManagedBroker
) -> None:
    api, enroll_token = hub
    v1, v2 = make_bundle(1), make_bundle(2)
    for path in (v1, v2):
        cmd = [*CLI, "hub", "upload", str(path), "--hub", api.url, "--token", api.token]
        up = subprocess.run(cmd, capture_output=True, text=True)
        assert up.returncode == 0, up.stderr
    agents = []
    for dev in AGENTS:
        token = enroll_token()
        log = (tmp_path / f"{dev}.log").open("w")
        agents.append(subprocess.Popen(
            [*CLI, "agent", "run", "--device-id", dev, "--broker", broker.url,
             "--data-dir", str(tmp_path / dev), "--bundle", str(v1),
             "--trusted-key", str(keys[1]), "--hub", api.url, "--enroll-token", token,
             "--telemetry-interval", "1", "--probation-seconds", "1",
             "--probation-min-inferences", "0", "--selftest-time-budget", "0.2"],
            stdout=log, stderr=subprocess.STDOUT,
        ))  # fmt: skip
    try:

        def versions() -> dict[str, Any]:
            devs = {d["id"]: d for d in api("GET", "/devices")}
            return {k: (devs[k]["model"] or {}).get("version") for k in AGENTS if k in devs}

        wait_for(lambda: versions() == {d: 1 for d in AGENTS}, 90, "agents on v1")
        devices = {d["id"]: d for d in api("GET", "/devices")}
        assert all(devices[d]["enrolled"] and devices[d]["tags"] == ["e2e"] for d in AGENTS)
        rid = api("POST", "/rollouts", {"model": "digits", "version": 2,
                                        "target": {"tags": ["e2e"]}, "waves": [50, 100],
                                        "gates": {"p95_latency_ms": None}})["id"]  # fmt: skip
        r = wait_for(lambda: (x := api("GET", f"/rollouts/{rid}"))["state"] in
                     ("completed", "paused", "rolled_back") and x, 180, "rollout end")  # fmt: skip
        assert r["state"] == "completed", json.dumps(r["audit"], indent=1)
        assert [w["committed"] for w in r["waves"]] == [1, 1]
        assert versions() == {d: 2 for d in AGENTS}
        steps = [e["step"] for e in api("GET", f"/devices/{AGENTS[0]}/events")]
        assert "committed" in steps and "downloading" in steps
        r = api("POST", f"/rollouts/{rid}/rollback")
        assert r["state"] == "rolled_back"
        wait_for(lambda: versions() == {d: 1 for d in AGENTS}, 120, "agents back on v1")
        wait_for(lambda: {d["status"] for d in api("GET", f"/rollouts/{rid}")["deployments"]}
                 == {"reverted"}, 30, "deployments reverted")  # fmt: skip
        for dev in AGENTS:  # each logged in with its own account and refused no command
            creds = json.loads((tmp_path / dev / "credentials.json").read_text())
            assert creds["mqtt"]["username"] == dev and creds["command_key"]
            text = (tmp_path / f"{dev}.log").read_text()
            assert "anonymous" not in text and "refused" not in text, text[-2000:]
    finally:
        for p in agents:
            p.terminate()
        for p in agents:
            p.wait(15)
