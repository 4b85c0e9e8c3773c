"""End to end: capability-aware rollouts with a real hub and two real agents (subprocesses)
on a private Mosquitto.

One agent runs in this venv (ONNX Runtime installed); the other runs a Python whose
site-packages hold everything this venv has *except* ONNX Runtime, OpenVINO and TensorFlow
(a ``venv --without-pip`` whose site-packages are links to this venv's, minus those): only
LiteRT, as an edge-only device. Nothing about its capabilities is faked: it reports what
its interpreter finds installed.

- An ONNX-only v2 rolls out: the LiteRT-only device is ``incompatible`` with the reason
  and never gets the deploy; the other commits; the rollout completes.
- v3, whose variant was evaluated with an ONNX Runtime newer than any device has, is
  incompatible with both: nobody is sent it and the rollout ends ``aborted``.
(The agent refusing such a bundle sent directly, bypassing the hub, is
tests/edge/attacks/test_incompatible_refusal.py.)
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import sysconfig
import urllib.request
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest

from tests import waiting
from tests.bundles import make_bundle as make_onnx_bundle
from tests.edge.brokers import PrivateBroker, private_broker  # noqa: F401 - pytest fixture
from tests.hub_process import served_hub

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[4]
CLI = ["-m", "edge.cli"]
HIDDEN = ("onnxruntime", "openvino", "tensorflow", "tensorboard", "keras", "tf_keras")
wait_for = functools.partial(waiting.wait_for, interval=0.5)


def litert_only_python(dest: Path) -> Path:
    """A venv whose site-packages link to this one's entries except the hidden runtimes."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(dest)], check=True)
    ours = Path(sysconfig.get_paths()["purelib"])
    theirs = next((dest / "lib").glob("python3*/site-packages"))
    for entry in ours.iterdir():
        if not entry.name.lower().startswith(HIDDEN):
            (theirs / entry.name).symlink_to(entry)
    python = dest / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import importlib.util as u; print(u.find_spec('onnxruntime'), "
         "u.find_spec('ai_edge_litert') is not None)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert probe.stdout.split() == ["None", "True"], probe.stdout
    return python


class Hub:
    def __init__(self, url: str, token: str, data: Path) -> None:
        self.url, self.token, self.data = url, token, data

    def api(self, method: str, path: str, body: Any = None) -> Any:
        req = urllib.request.Request(
            self.url + "/api/v1" + path, method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def admin(self, *args: str) -> str:
        out = subprocess.run([sys.executable, *CLI, "hub", *args, "--data-dir", str(self.data)],
                             capture_output=True, text=True, check=True)  # fmt: skip
        return out.stdout.strip().splitlines()[-1]

    def rollout(self, version: int) -> dict[str, Any]:
        body = {"model": "digits", "version": version, "target": {"tags": ["mixed"]},
                "waves": [100], "soak_seconds": 0, "error_threshold": 0,
                "gates": {"p95_latency_ms": None, "error_rate": None, "drift": None}}  # fmt: skip
        rid = self.api("POST", "/rollouts", body)["id"]
        ended = ("completed", "paused", "rolled_back", "aborted")
        r: dict[str, Any] = wait_for(
            lambda: (x := self.api("GET", f"/rollouts/{rid}"))["state"] in ended and x,
            120, f"rollout of v{version} ends",
        )  # fmt: skip
        return r


@pytest.fixture
def hub(tmp_path: Path, keys: Any, private_broker: PrivateBroker) -> Iterator[Hub]:  # noqa: F811
    data = tmp_path / "hub"
    with served_hub(data, private_broker.url, keys[1]) as (url, token):
        yield Hub(url, token, data)


def test_onnx_only_rollout_to_a_fleet_with_a_litert_only_device(
    hub: Hub,
    keys: Any,
    tmp_path: Path,
    private_broker: PrivateBroker,  # noqa: F811
) -> None:
    newer = {"requires": {"runtime_version": "99.1.0", "runtime_package": "onnxruntime"}}
    bundles = {
        v: make_onnx_bundle(tmp_path / f"digits-{v}.ekb", keys[0], version=v, seed=v,
                            metrics=newer if v == 3 else None)
        for v in (1, 2, 3)
    }  # fmt: skip
    for path in bundles.values():
        up = subprocess.run(
            [sys.executable, *CLI, "hub", "upload", str(path), "--hub", hub.url,
             "--token", hub.token], capture_output=True, text=True,
        )  # fmt: skip
        assert up.returncode == 0, up.stderr
    lite = litert_only_python(tmp_path / "litert-only")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    agents = []
    for dev, python, start in (("ort-a", sys.executable, ["--bundle", str(bundles[1])]),
                               ("lite-b", str(lite), [])):  # fmt: skip
        log = (tmp_path / f"{dev}.log").open("w")
        agents.append(subprocess.Popen(
            [python, *CLI, "agent", "run", "--device-id", dev, "--broker", private_broker.url,
             "--data-dir", str(tmp_path / dev), *start, "--trusted-key", str(keys[1]),
             "--hub", hub.url, "--enroll-token", hub.admin("enroll-token", "--tags", "mixed"),
             "--telemetry-interval", "1", "--probation-seconds", "1",
             "--probation-min-inferences", "0", "--selftest-time-budget", "0.2"],
            stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        ))  # fmt: skip
    try:

        def reported() -> bool:
            devs = {d["id"]: d for d in hub.api("GET", "/devices")}
            if (devs.get("ort-a", {}).get("model") or {}).get("version") != 1:
                return False
            return "lite-b" in devs and bool(
                hub.api("GET", "/devices/lite-b").get("capabilities", {}).get("runtimes")
            )

        wait_for(reported, 120, "ort-a on v1 and lite-b describing itself")
        lite_caps = hub.api("GET", "/devices/lite-b")["capabilities"]["runtimes"]
        assert lite_caps["litert"]["available"] and not lite_caps["onnxruntime"]["available"]

        r = hub.rollout(2)
        deps = {d["device"]: d for d in r["deployments"]}
        assert r["state"] == "completed", r["audit"][-1]
        assert deps["ort-a"]["status"] == "committed"
        assert deps["lite-b"]["status"] == "incompatible"
        assert deps["lite-b"]["reason"].startswith(
            "no variant of digits v2 runs on this device: onnxruntime-fp32 needs onnxruntime, "
            "which the device does not have (not installed"
        ), deps["lite-b"]
        assert deps["lite-b"]["command"] is None  # never sent
        assert r["incompatible"] == 1 and r["failed"] == 0
        events = hub.api("GET", "/devices/lite-b/events")
        assert not [e for e in events if e.get("kind") == "deploy"], events

        r = hub.rollout(3)
        assert r["state"] == "aborted", r["audit"][-1]
        assert r["audit"][-1]["reason"] == (
            "no target device can run digits v3: 2 incompatible, none committed"
        )
        deps = {d["device"]: d for d in r["deployments"]}
        assert deps["ort-a"]["reason"] == (
            "no variant of digits v3 runs on this device: onnxruntime-fp32 needs onnxruntime "
            f">= 99.1.0, the device has {version('onnxruntime')}"
        )
        devs = {d["id"]: d for d in hub.api("GET", "/devices")}
        assert devs["ort-a"]["model"]["version"] == 2  # untouched by the v3 that fits nobody
    finally:
        for a in agents:
            a.terminate()
        for a in agents:
            a.wait(15)
