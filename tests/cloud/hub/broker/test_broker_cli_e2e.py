"""The operator's path, all real processes: ``edgekit hub broker-config`` writes the broker's
configuration from the hub's database, Mosquitto includes it, ``edgekit hub serve`` with the
same database logs in with the hub account (no MQTT flags), a real agent enrolls through the
hub and connects with the account it stored, and ``edgekit hub revoke-device`` kicks it and
keeps it out."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.hub.broker.conftest import have_mosquitto
from tests.cloud.hub.broker.managed import ManagedBroker
from tests.edge.integration.test_agent_mqtt import AgentProcess
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CLI = [sys.executable, "-m", "edge.cli"]


def hub_cli(*args: str) -> str:
    done = subprocess.run([*CLI, "hub", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def get(url: str, token: str) -> Any:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_generated_config_hub_account_enrolled_agent_and_cli_revoke(tmp_path: Path) -> None:
    have_mosquitto()
    data = tmp_path / "hub"
    db = ["--db", f"sqlite:///{data / 'hub.db'}", "--data-dir", str(data)]
    out = tmp_path / "broker-conf"
    hub_cli("broker-config", *db, "--out", str(out))
    broker = ManagedBroker(tmp_path / "mosquitto", out)
    broker.start()
    hub = subprocess.Popen(
        [*CLI, "hub", "serve", "--port", "0", *db, "--broker", broker.url,
         "--bridge-writer", "thread"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    agent: AgentProcess | None = None
    try:
        assert hub.stdout is not None
        url = hub.stdout.readline().split()[-1]
        assert url.startswith("http://"), url
        token = hub_cli("create-token", "--role", "viewer", *db)
        enroll = hub_cli("enroll-token", *db)
        agent = AgentProcess([
            "--device-id", "e2e-cam", "--broker", broker.url, "--data-dir", str(tmp_path / "a"),
            "--hub", url, "--enroll-token", enroll, "--telemetry-interval", "3600",
        ])  # fmt: skip

        def device() -> dict[str, Any] | None:
            found = [d for d in get(f"{url}/api/v1/devices", token) if d["id"] == "e2e-cam"]
            return found[0] if found and found[0]["online"] else None

        # online in the hub = the agent logged in AND the hub (as edgekit-hub) heard it
        assert wait_for(device, 60, "the agent online in the hub", interval=0.3)["enrolled"]
        creds_path = tmp_path / "a" / "credentials.json"
        creds = json.loads(creds_path.read_text())
        assert creds["mqtt"]["username"] == "e2e-cam" and creds["mqtt"]["password"]
        assert stat.S_IMODE(creds_path.stat().st_mode) == 0o600
        assert not agent.saw("refused the connection")

        # revoke-device finds the broker where the hub last reached it
        line = hub_cli("revoke-device", "e2e-cam", *db)
        assert "broker account removed" in line, line
        wait_for(lambda: agent.saw("refused the connection: Not authorized"), 60,
                 "the revoked agent's reconnect refused")  # fmt: skip
        assert agent.proc.poll() is None, "a refused agent keeps running and retrying"
        d = next(d for d in get(f"{url}/api/v1/devices", token) if d["id"] == "e2e-cam")
        assert not d["enrolled"]
    finally:
        if agent is not None:
            agent.stop()
        hub.terminate()
        _out, err = hub.communicate(timeout=20)
        broker.stop()
    assert "anonymously" not in err  # the hub logged in with its account: no warning
