"""End to end: shadow as a rollout setting, with a real hub, two real agents (subprocesses
replaying live inputs) and a private Mosquitto, driven by ``edgekit hub rollout create
--shadow-inputs N --shadow-min-agreement X`` as a pipeline would.

The agents' own config shadows nothing (``--shadow-inputs 0``): only the rollout asks.

- v2 answers every input one class off v1 (agreement 0): wave 1's device runs it beside
  v1 on 20 live inputs, refuses it, the hub's shadow gate fails the wave and rolls the
  rollout back; wave 2's device is never sent the deploy; ``--wait`` exits 1 saying why.
- v3 has v1's weights (agreement 1): both waves pass the gate and commit it; each
  deployment shows its agreement and the candidate's latency percentiles.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.bundles import make_bundle as make_onnx_bundle
from tests.cloud.hub.integration.test_rollout_cli_e2e import (  # noqa: F401 - fixture "hub"
    CLI,
    Hub,
    hub,
    wait_for,
)
from tests.edge.brokers import PrivateBroker, private_broker  # noqa: F401 - pytest fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]
AGENTS = ("shadow-a", "shadow-b")
SHADOW = ["--shadow-inputs", "20", "--shadow-min-agreement", "0.9", "--shadow-timeout", "60"]


def versions(h: Hub) -> dict[str, Any]:
    devs = {d["id"]: d for d in h.get("/devices")}
    return {k: (devs[k]["model"] or {}).get("version") for k in AGENTS if k in devs}


def create(h: Hub, version: int) -> subprocess.CompletedProcess[str]:
    return h.cli(
        "rollout", "create", "digits", str(version), "--tag", "shadowed", "--waves", "50,100",
        "--on-error", "rollback", "--gate", "p95_latency_ms=off", *SHADOW,
        "--wait", "--timeout", "240", timeout=300,
    )  # fmt: skip


def newest_rollout(h: Hub) -> dict[str, Any]:
    rid = json.loads(h.cli("rollout", "list", "--json").stdout)[0]["id"]
    shown: dict[str, Any] = json.loads(h.cli("rollout", "show", rid, "--json").stdout)
    return shown


def test_a_disagreeing_candidate_is_stopped_and_a_matching_one_ships(
    hub: Hub,  # noqa: F811
    keys: Any,
    tmp_path: Path,
    private_broker: PrivateBroker,  # noqa: F811
) -> None:
    bundles = {
        1: make_onnx_bundle(tmp_path / "digits-1.ekb", keys[0], version=1),
        2: make_onnx_bundle(tmp_path / "digits-2.ekb", keys[0], version=2, kind="shifted"),
        3: make_onnx_bundle(tmp_path / "digits-3.ekb", keys[0], version=3),
    }
    for path in bundles.values():
        up = hub.cli("upload", str(path), "--hub", hub.url, "--token", hub.token)
        assert up.returncode == 0, up.stderr
    replay = tmp_path / "replay.npy"
    np.save(replay, np.random.default_rng(0).integers(0, 17, (64, 8, 8, 1)).astype(np.float32))
    agents = []
    for dev in AGENTS:
        log = (tmp_path / f"{dev}.log").open("w")
        agents.append(subprocess.Popen(
            [*CLI, "agent", "run", "--device-id", dev, "--broker", private_broker.url,
             "--data-dir", str(tmp_path / dev), "--bundle", str(bundles[1]),
             "--trusted-key", str(keys[1]), "--hub", hub.url,
             "--enroll-token", hub.admin("enroll-token", "--tags", "shadowed"),
             "--telemetry-interval", "1", "--probation-seconds", "1",
             "--probation-min-inferences", "0", "--selftest-time-budget", "0.2",
             "--replay", str(replay), "--replay-rate", "20", "--replay-loop",
             "--shadow-inputs", "0"],
            stdout=log, stderr=subprocess.STDOUT,
        ))  # fmt: skip
    try:
        wait_for(lambda: versions(hub) == {d: 1 for d in AGENTS}, 90, "agents on v1")

        bad = create(hub, 2)
        assert bad.returncode == 1, (bad.stdout, bad.stderr)
        assert "rolled_back" in bad.stderr and "shadow gate: " in bad.stderr, bad.stderr
        assert "agreed with the served model on 0.0% of 20 inputs" in bad.stderr
        assert "AGREEMENT" in bad.stdout and "0.0% of 20" in bad.stdout
        r = newest_rollout(hub)
        assert r["state"] == "rolled_back" and r["version"] == 2
        [tried] = [d for d in r["deployments"] if d["command"] is not None]
        assert len(r["deployments"]) == 1  # wave 2 was never sent the deploy
        assert tried["shadow"]["agreement"] == 0.0 and tried["shadow"]["inputs"] == 20
        assert "shadow failed: agreement 0.000 below 0.9" in tried["reason"]
        gate = next(g for g in r["gates"] if g["metric"] == "shadow_agreement")
        assert gate["ok"] is False and gate["under"] == [tried["device"]]
        events = hub.get(f"/devices/{tried['device']}/events")
        steps = [e["step"] for e in events if e.get("rollout") == r["id"]]
        assert "activating" not in steps  # it never served v2
        assert versions(hub) == {d: 1 for d in AGENTS}

        good = create(hub, 3)
        assert good.returncode == 0, (good.stdout, good.stderr)
        r = newest_rollout(hub)
        assert r["state"] == "completed" and r["committed"] == 2, r["audit"][-1]
        for d in r["deployments"]:
            s = d["shadow"]
            assert d["status"] == "committed" and s["agreement"] == 1.0 and s["inputs"] == 20
            for key in ("candidate_latency_ms", "served_latency_ms"):
                assert 0 < s[key]["p50"] <= s[key]["p95"], s
        gate = next(g for g in r["gates"] if g["metric"] == "shadow_agreement")
        assert gate["ok"] is True and gate["devices"] == 2 and gate["value"] == 1.0
        assert "100.0% of 20" in good.stdout
        assert versions(hub) == {d: 3 for d in AGENTS}
    finally:
        for a in agents:
            a.terminate()
        for a in agents:
            a.wait(15)
