"""End to end: ``edgekit hub rollout|devices`` drive real rollouts on a real hub with two
real agents (subprocesses) on a private Mosquitto, as a CI/CD pipeline would: only the
command line and its exit codes, through EDGEKIT_HUB/EDGEKIT_TOKEN.

v2 goes out in gated waves with manual approval (paused and resumed on the way) and the
CLI's ``--wait`` exits 0; an operator's ``rollback`` brings v1 back; a v3 whose self-test
fails is rolled back by the hub and ``create --wait`` exits 1 with every device's reason;
an aborted draft exits 1 too.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import waiting
from tests.bundles import make_bundle as make_onnx_bundle
from tests.edge.brokers import PrivateBroker, private_broker  # noqa: F401 - pytest fixture
from tests.hub_process import served_hub

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CLI = [sys.executable, "-m", "edge.cli"]
AGENTS = ("cli-a", "cli-b")
wait_for = functools.partial(waiting.wait_for, interval=0.5)


class Hub:
    def __init__(self, url: str, token: str, data: Path) -> None:
        self.url, self.token, self.data = url, token, data
        self.env = {**os.environ, "EDGEKIT_HUB": url, "EDGEKIT_TOKEN": token}

    def get(self, path: str) -> Any:
        req = urllib.request.Request(
            self.url + "/api/v1" + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """``edgekit hub ARGS`` as a pipeline runs it (env, no terminal)."""
        return subprocess.run([*CLI, "hub", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)  # fmt: skip

    def admin(self, *args: str) -> str:
        out = subprocess.run([*CLI, "hub", *args, "--data-dir", str(self.data)],
                             capture_output=True, text=True, check=True)  # fmt: skip
        return out.stdout.strip().splitlines()[-1]

    def versions(self) -> dict[str, Any]:
        devs = {d["id"]: d for d in self.get("/devices")}
        return {k: (devs[k]["model"] or {}).get("version") for k in AGENTS if k in devs}


@pytest.fixture
def hub(tmp_path: Path, keys: Any, private_broker: PrivateBroker) -> Iterator[Hub]:  # noqa: F811
    data = tmp_path / "hub"
    with served_hub(data, private_broker.url, keys[1]) as (url, token):
        yield Hub(url, token, data)


def test_the_cli_drives_real_rollouts(
    hub: Hub,
    keys: Any,
    tmp_path: Path,
    private_broker: PrivateBroker,  # noqa: F811
) -> None:
    bundles = {}
    for version in (1, 2, 3):
        bundles[version] = make_onnx_bundle(
            tmp_path / f"digits-{version}.ekb", keys[0], version=version, seed=version,
            bad_golden=version == 3,
        )  # fmt: skip
        up = hub.cli("upload", str(bundles[version]), "--hub", hub.url, "--token", hub.token)
        assert up.returncode == 0, up.stderr
    agents = []
    for dev in AGENTS:
        log = (tmp_path / f"{dev}.log").open("w")
        agents.append(subprocess.Popen(
            [*CLI, "agent", "run", "--device-id", dev, "--broker", private_broker.url,
             "--data-dir", str(tmp_path / dev), "--bundle", str(bundles[1]),
             "--trusted-key", str(keys[1]), "--hub", hub.url,
             "--enroll-token", hub.admin("enroll-token", "--tags", "cli"),
             "--telemetry-interval", "1", "--probation-seconds", "1",
             "--probation-min-inferences", "0", "--selftest-time-budget", "0.2"],
            stdout=log, stderr=subprocess.STDOUT,
        ))  # fmt: skip
    try:
        wait_for(lambda: hub.versions() == {d: 1 for d in AGENTS}, 90, "agents on v1")
        _devices_show_the_fleet(hub)
        _good_version_with_pause_resume_and_rollback(hub)
        _bad_version_is_rolled_back(hub)
        _aborted_draft(hub)
    finally:
        for a in agents:
            a.terminate()
        for a in agents:
            a.wait(15)


def _devices_show_the_fleet(hub: Hub) -> None:
    r = hub.cli("devices", "list")
    assert r.returncode == 0, r.stderr
    for dev in AGENTS:
        row = next(line for line in r.stdout.splitlines() if line.startswith(dev + " "))
        assert "yes" in row and "digits v1" in row and "cli" in row
    listed = json.loads(hub.cli("devices", "list", "--tag", "cli", "--json").stdout)
    assert sorted(d["id"] for d in listed) == list(AGENTS)
    r = hub.cli("devices", "show", AGENTS[0], "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["enrolled"] is True


def _good_version_with_pause_resume_and_rollback(hub: Hub) -> None:
    r = hub.cli("rollout", "create", "digits", "2", "--tag", "cli", "--waves", "50,100",
                "--gate", "p95_latency_ms=off", "--manual-approval")  # fmt: skip
    assert r.returncode == 0, r.stderr
    rid = r.stdout.splitlines()[-1]
    wait_for(lambda: hub.get(f"/rollouts/{rid}")["waiting_for"] == "approval", 120,
             "wave 1 committed, waiting for approval")  # fmt: skip
    for action, state in (("pause", "paused"), ("resume", "running")):
        r = hub.cli("rollout", action, rid)
        assert r.returncode == 0 and hub.get(f"/rollouts/{rid}")["state"] == state, r.stderr
    assert hub.cli("rollout", "approve", rid).returncode == 0
    r = hub.cli("rollout", "show", rid, "--wait", "--timeout", "180", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["state"] == "completed"
    assert hub.versions() == {d: 2 for d in AGENTS}
    r = hub.cli("devices", "show", AGENTS[0])
    assert "digits v2" in r.stdout and "committed" in r.stdout
    r = hub.cli("rollout", "rollback", rid)
    assert r.returncode == 0 and r.stdout.strip().endswith("now rolled_back"), r.stderr
    assert hub.get(f"/rollouts/{rid}")["state"] == "rolled_back"
    wait_for(lambda: hub.versions() == {d: 1 for d in AGENTS}, 120, "agents back on v1")
    wait_for(lambda: {d["status"] for d in hub.get(f"/rollouts/{rid}")["deployments"]}
             == {"reverted"}, 60, "deployments reverted")  # fmt: skip


def _bad_version_is_rolled_back(hub: Hub) -> None:
    r = hub.cli("rollout", "create", "digits", "3", "--tag", "cli", "--on-error", "rollback",
                "--wait", "--timeout", "180")  # fmt: skip
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "rolled_back" in r.stderr and "failed" in r.stdout
    rid = json.loads(hub.cli("rollout", "list", "--json").stdout)[0]["id"]
    shown = json.loads(hub.cli("rollout", "show", rid, "--json").stdout)
    assert shown["state"] == "rolled_back" and shown["version"] == 3
    assert hub.versions() == {d: 1 for d in AGENTS}  # the bad version never took over


def _aborted_draft(hub: Hub) -> None:
    r = hub.cli("rollout", "create", "digits", "2", "--all", "--draft")
    assert r.returncode == 0, r.stderr
    rid = r.stdout.splitlines()[-1]
    assert hub.cli("rollout", "abort", rid).returncode == 0
    r = hub.cli("rollout", "show", rid, "--wait")
    assert r.returncode == 1 and "aborted" in r.stderr
    bad = hub.cli("rollout", "show", rid, "--token", "ekt_nope")
    assert bad.returncode == 3 and "401" in bad.stderr
    gone = hub.cli("rollout", "show", "no-such-rollout")
    assert gone.returncode == 2 and "not_found" in gone.stderr
