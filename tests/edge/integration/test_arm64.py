"""The edge side on arm64: this checkout run on an emulated Debian bookworm aarch64 userland.

scripts/arm64 builds (or reuses, cached) the userland and PyPI's aarch64 wheels of the
``edge`` extra, and runs ``python3.11 -m edge.cli`` from the checkout under
``qemu-aarch64-static``, as on a Raspberry-Pi-class board (emulated core: Cortex-A72).
Against a real broker (a private Mosquitto) and a real hub (x86, native):

- ``edgekit predict`` on arm64 gives the x86 scores;
- the agent comes online with the local bundle installed after its self-test, reports
  arm64 capabilities, answers ``infer/req`` with the x86 scores and sends telemetry;
- a hub rollout of v2 reaches it, and an operator's rollback brings v1 back.

Timings under emulation mean nothing and are not asserted. Needs qemu-user-static and
debootstrap (CI installs them, .ci/run); the first build also needs the Debian mirror and
PyPI, later runs reuse $EDGEKIT_ARM64_CACHE (default ~/.cache/edgekit-arm64).
"""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from cloud.keys import load_private_key, sign_manifest
from edge.contract import Manifest
from tests import waiting
from tests.edge.brokers import PrivateBroker, private_broker  # noqa: F401 - pytest fixture
from tests.edge.bundle_helpers import read_members, write_members
from tests.hub_process import served_hub
from tests.services import need_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "arm64"
BUNDLE = REPO / "models" / "digits.ekb"
PUB, KEY = REPO / "models" / "dev-signing.pub", REPO / "models" / "dev-signing.key"
CLI = [sys.executable, "-m", "edge.cli"]
wait_for = functools.partial(waiting.wait_for, interval=0.5)


@pytest.fixture(scope="module")
def arm64() -> Path:
    """The cache entry (built on first use): ``ENTRY/{rootfs,wheels,bin,info.json}``."""
    tools = all(shutil.which(t) for t in ("qemu-aarch64-static", "debootstrap"))
    need_service(tools, "qemu-aarch64-static and debootstrap (apt-get install "
                 "qemu-user-static debootstrap)")  # fmt: skip
    out = subprocess.run([sys.executable, str(SCRIPT), "rootfs"], capture_output=True,
                         text=True, timeout=1200)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return Path(out.stdout.strip().splitlines()[-1])


def golden_input(dest: Path) -> Path:
    """The bundle's first golden input in the raw domain a camera would send."""
    with tarfile.open(BUNDLE) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        golden = np.load(io.BytesIO(tar.extractfile("golden.npz").read()))  # type: ignore[union-attr]
    pre = manifest["preprocessing"]
    x = np.clip((golden["inputs"][0] - pre["offset"]) / pre["scale"], *pre["raw_range"])
    np.save(dest, x.astype(np.float32))
    return dest


def native_scores(inp: Path, runtime: str, precision: str) -> list[float]:
    out = subprocess.run([*CLI, "predict", str(BUNDLE), "--input", str(inp), "--key", str(PUB),
                          "--runtime", runtime, "--precision", precision, "--json"],
                         capture_output=True, text=True, check=True)  # fmt: skip
    scores: list[float] = json.loads(out.stdout)["scores"]
    return scores


def resigned(dest: Path, version: int) -> Path:
    """digits.ekb as version ``version``, signed again with the dev key."""
    out = []
    for info, data in read_members(BUNDLE):
        if info.name == "manifest.json" and data is not None:
            obj = json.loads(data)
            obj.pop("signature", None)
            obj["version"] = version
            signed = sign_manifest(Manifest.parse(obj), load_private_key(KEY))
            data = json.dumps(signed.to_dict(), indent=2).encode()
        out.append((info, data))
    return write_members(dest, out)


def test_predict_on_arm64_gives_the_x86_scores(arm64: Path, tmp_path: Path) -> None:
    info = json.loads((arm64 / "info.json").read_text())
    assert info["wheels"]["ai-edge-litert"]  # resolved for aarch64 from PyPI
    inp = golden_input(tmp_path / "digit.npy")
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "predict", str(BUNDLE), str(inp), "--key", str(PUB),
         "--runtime", "litert", "--precision", "fp32", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout)
    assert got["signature_verified"] is True
    assert got["runtime_version"] == info["wheels"]["ai-edge-litert"]
    np.testing.assert_allclose(got["scores"], native_scores(inp, "litert", "fp32"), atol=1e-5)
    bad = subprocess.run(
        [sys.executable, str(SCRIPT), "predict", str(BUNDLE), str(inp), "--key",
         str(tmp_path / "no-such.pub")], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bad.returncode != 0 and "no-such.pub" in bad.stderr


class Hub:
    def __init__(self, url: str, token: str, data: Path) -> None:
        self.url, self.token, self.data = url, token, data

    def get(self, path: str) -> Any:
        req = urllib.request.Request(
            self.url + "/api/v1" + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "EDGEKIT_HUB": self.url, "EDGEKIT_TOKEN": self.token}
        return subprocess.run([*CLI, "hub", *args], env=env, capture_output=True, text=True,
                              timeout=timeout)  # fmt: skip

    def admin(self, *args: str) -> str:
        out = subprocess.run([*CLI, "hub", *args, "--data-dir", str(self.data)],
                             capture_output=True, text=True, check=True)  # fmt: skip
        return out.stdout.strip().splitlines()[-1]

    def version_of(self, device: str) -> int | None:
        devs = {d["id"]: d for d in self.get("/devices")}
        return ((devs.get(device) or {}).get("model") or {}).get("version")


@pytest.fixture
def hub(tmp_path: Path, private_broker: PrivateBroker) -> Iterator[Hub]:  # noqa: F811
    data = tmp_path / "hub"
    with served_hub(data, private_broker.url, PUB) as (url, token):
        yield Hub(url, token, data)


class Watcher:
    """Every message under ``edgekit/v1/<device>/``, as parsed JSON, in arrival order."""

    def __init__(self, port: int, device: str) -> None:
        self.base = f"edgekit/v1/{device}/"
        self.seen: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"arm64-watch-{uuid.uuid4().hex[:6]}")  # fmt: skip
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(self.base + "#", qos=1)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = None
        with self.lock:
            self.seen.append((msg.topic.removeprefix(self.base), body))

    def find(self, topic: str, pred: Any = lambda b: True) -> Any:
        with self.lock:
            return next((b for t, b in self.seen if t == topic and b and pred(b)), None)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_the_arm64_agent_serves_reports_and_follows_a_rollout(
    arm64: Path,
    hub: Hub,
    tmp_path: Path,
    private_broker: PrivateBroker,  # noqa: F811
) -> None:
    v2 = resigned(tmp_path / "digits-v2.ekb", 2)
    for bundle in (BUNDLE, v2):
        up = hub.cli("upload", str(bundle), "--hub", hub.url, "--token", hub.token)
        assert up.returncode == 0, up.stderr
    device = f"arm64-{uuid.uuid4().hex[:6]}"
    watch = Watcher(private_broker.port, device)
    log_path = tmp_path / "agent.log"
    with log_path.open("w") as log:
        agent = subprocess.Popen(
            [sys.executable, str(SCRIPT), "agent", "--device-id", device,
             "--broker", private_broker.url, "--data-dir", str(tmp_path / "agent"),
             "--bundle", str(BUNDLE), "--trusted-key", str(PUB), "--hub", hub.url,
             "--enroll-token", hub.admin("enroll-token", "--tags", "arm64"),
             "--telemetry-interval", "2", "--probation-seconds", "1",
             "--probation-min-inferences", "0", "--selftest-time-budget", "0.2"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _online_with_arm64_capabilities(watch, log_path)
        _mqtt_inference_matches_x86(watch, tmp_path)
        _telemetry_arrives(watch)
        _rollout_and_rollback(hub, device)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nagent log tail:\n{log_path.read_text()[-3000:]}") from exc
    finally:
        watch.close()
        agent.terminate()
        try:
            agent.wait(60)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()


def _online_with_arm64_capabilities(watch: Watcher, log_path: Path) -> None:
    def online_v1(b: Any) -> bool:
        return b.get("state") == "online" and (b.get("model") or {}).get("version") == 1

    status = wait_for(lambda: watch.find("status", online_v1), 300, "online status with v1")
    caps = status["capabilities"]
    assert caps["cpu"]["arch"] == "aarch64" and caps["cpu"]["source"] == "cpuinfo"
    assert caps["cpu"]["model"] == "Cortex-A72" and "asimd" in caps["cpu"]["flags"]
    assert not {"avx2", "sse4_2"} & set(caps["cpu"]["flags"])  # not the x86 host's flags
    litert = caps["runtimes"]["litert"]
    assert litert["available"] is True and status["model"]["runtime"] == "litert"
    onnx = caps["runtimes"]["onnxruntime"]
    assert onnx["available"] is False and "pip install onnxruntime" in onnx["reason"]

    def event(step: str) -> Any:
        return watch.find("events", lambda b: b.get("step") == step and b.get("version") == 1)

    assert wait_for(lambda: event("self_test"), 60, "the v1 self-test event")["kind"] == "deploy"
    wait_for(lambda: event("committed"), 60, "v1 committed")


def _mqtt_inference_matches_x86(watch: Watcher, tmp_path: Path) -> None:
    inp = golden_input(tmp_path / "digit.npy")
    model = watch.find("status", lambda b: b.get("state") == "online")["model"]
    request = {"id": "arm64-1", "inputs": np.load(inp).ravel().tolist()}
    watch.client.publish(watch.base + "infer/req", json.dumps(request), qos=1)
    reply = wait_for(lambda: watch.find("infer/res", lambda b: b.get("id") == "arm64-1"),
                     120, "infer/res")  # fmt: skip
    assert not reply.get("error"), reply
    expected = native_scores(inp, model["runtime"], model["precision"])
    atol = 1e-5 if model["precision"] == "fp32" else 2e-3
    np.testing.assert_allclose(reply["scores"], expected, atol=atol)
    wrong = {"id": "arm64-bad", "inputs": [1.0, 2.0, 3.0]}  # not an 8x8 image
    watch.client.publish(watch.base + "infer/req", json.dumps(wrong), qos=1)
    bad = wait_for(lambda: watch.find("infer/res", lambda b: b.get("id") == "arm64-bad"),
                   60, "the bad request's answer")  # fmt: skip
    assert bad["error"]["code"] == "shape", bad


def _telemetry_arrives(watch: Watcher) -> None:
    tel = wait_for(lambda: watch.find("telemetry", lambda b: b.get("inferences_total", 0) >= 1),
                   120, "telemetry counting the inference")  # fmt: skip
    assert tel["schema"] == "edgekit.telemetry/1"


def _rollout_and_rollback(hub: Hub, device: str) -> None:
    wait_for(lambda: hub.version_of(device) == 1, 120, "the hub sees the device on v1")
    r = hub.cli("rollout", "create", "digits", "2", "--tag", "arm64", "--gate",
                "p95_latency_ms=off", "--wait", "--timeout", "480")  # fmt: skip
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert hub.version_of(device) == 2
    rid = json.loads(hub.cli("rollout", "list", "--json").stdout)[0]["id"]
    r = hub.cli("rollout", "rollback", rid)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: hub.version_of(device) == 1, 300, "the device back on v1")
