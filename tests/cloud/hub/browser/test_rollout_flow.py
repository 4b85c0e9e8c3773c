"""The done-when flow of issue 4 in a browser: log in, upload bundles, start a rollout to
real agents over a real Mosquitto, watch it progress, roll it back — with screenshots.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.hub.http.auth import create_enrollment_token
from tests.cloud.hub.browser.bundles import make_bundle
from tests.cloud.hub.browser.conftest import HubServer, login, make_hub, shot, wait_js, wait_until
from tests.services import need_service

pytestmark = [pytest.mark.slow, pytest.mark.integration]
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
AGENTS = ("lab-a", "lab-b")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[str]:
    if not Path(MOSQUITTO).exists():
        need_service(False, "needs mosquitto")
    port = free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _open(port), timeout=10)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture
def live_hub(tmp_path: Path, broker: str) -> Iterator[HubServer]:
    hub, server = make_hub(
        tmp_path, broker_url=broker, background=True, tick_interval_s=0.5, bridge_flush_s=0.2
    )
    hub.app.extensions["edgekit_hub"].config.public_url = hub.url  # bundle URLs in commands
    try:
        yield hub
    finally:
        server.shutdown()
        hub.app.extensions["edgekit_hub"].stop()
        hub.app.extensions["edgekit_hub"].db.dispose()


def start_agent(hub: HubServer, broker: str, device: str, v1: Path, tmp: Path) -> Any:
    with hub.session() as db:
        token = create_enrollment_token(db, ["lab"])
    replay = tmp / "replay.npy"
    if not replay.exists():
        np.save(replay, np.random.default_rng(0).integers(0, 17, (64, 8, 8, 1)).astype(np.float32))
    log = (tmp / f"{device}.log").open("w")
    cmd = [
        sys.executable, "-m", "edge.cli", "agent", "run", "--device-id", device,
        "--data-dir", str(tmp / device), "--broker", broker, "--bundle", str(v1),
        "--trusted-key", str(hub.public_key), "--hub", hub.url, "--enroll-token", token,
        "--telemetry-interval", "1", "--replay", str(replay), "--replay-rate", "20",
        "--replay-loop", "--shadow-inputs", "0", "--probation-seconds", "2",
        "--probation-min-inferences", "5", "--selftest-time-budget", "0.5",
        "--probation-max-latency-ratio", "100",  # sub-ms timings on a busy shared box
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def test_rollout_to_real_agents_and_back(
    page: Any, live_hub: HubServer, broker: str, tmp_path: Path
) -> None:
    v1 = make_bundle(tmp_path / "digits-1.ekb", live_hub.private_key, 1)
    v2 = make_bundle(tmp_path / "digits-2.ekb", live_hub.private_key, 2)
    agents = [start_agent(live_hub, broker, d, v1, tmp_path) for d in AGENTS]
    try:
        login(page, live_hub, "olga")
        page.goto(f"{live_hub.url}/models")
        for bundle, key in ((v1, "digits@1"), (v2, "digits@2")):
            page.set_input_files("#bundle", str(bundle))
            page.click("#upload-button")
            page.wait_for_selector(f"tr[data-model='{key}']")

        page.goto(f"{live_hub.url}/?tag=lab")
        for d in AGENTS:
            row = f"document.querySelector('tr[data-device=\"{d}\"]')"
            wait_js(page, f"{row}?.innerText.includes('digits v1')", timeout=60_000)
        wait_js(page, "document.querySelectorAll('tr[data-device] .dot.on').length == 2")
        assert "unenrolled" not in page.inner_text("#fleet tbody")
        shot(page, "10-flow-fleet-v1")

        page.goto(f"{live_hub.url}/rollouts?model=digits&version=2")
        page.wait_for_selector("#version option[value='2']", state="attached")
        page.fill("#tags", "lab")
        page.fill("#waves", "50, 100")
        page.fill("#soak", "2")
        for gate in ("p95_latency_ms", "drift", "accuracy"):  # timing noise on a shared CI box
            page.uncheck(f"[data-gate={gate}]")
        page.click("#create-button")
        page.wait_for_url("**/rollouts/*")
        page.wait_for_selector("#state[data-state=running]")
        page.wait_for_selector("[data-wave='0'] .progress-seg.committed", timeout=90_000)
        shot(page, "11-flow-rollout-progress")
        page.wait_for_selector("#state[data-state=completed]", timeout=120_000)
        assert page.locator("#deployments tbody tr").count() == 2
        assert page.inner_text("#summary").startswith("2 of 2 devices committed")
        shot(page, "12-flow-rollout-completed")

        page.click("button[data-action=rollback]")
        page.wait_for_selector("#state[data-state=rolled_back]")
        wait_js(
            page,
            "[...document.querySelectorAll('#deployments tbody tr')]"
            ".every(r => r.innerText.includes('reverted'))",
            timeout=120_000,
        )
        assert "rollback" in page.inner_text("#audit tbody")
        shot(page, "13-flow-rolled-back")

        page.goto(f"{live_hub.url}/devices/{AGENTS[0]}")
        page.wait_for_selector("#events li[data-step=committed]", timeout=30_000)
        page.wait_for_selector("#chart-latency .uplot canvas")
        wait_until(lambda: "digits v1" in page.inner_text("#info"), timeout=30)
        shot(page, "14-flow-device-after-rollback")
    finally:
        for proc in agents:
            proc.terminate()
        for proc in agents:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
    for d in AGENTS:
        log = (tmp_path / f"{d}.log").read_text()
        assert "Traceback" not in log, log[-2000:]
