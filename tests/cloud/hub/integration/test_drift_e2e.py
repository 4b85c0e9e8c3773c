"""End to end: drift that names the feature, with real agents, a real Mosquitto and the hub.

Two agent subprocesses serve the same tabular bundle (30 named features) and replay 1000
inputs each: ``drift-shifted`` with one feature (sensor_11) moved by 2 std, ``drift-steady``
unshifted. The shifted one must say it (its log names the feature), its telemetry on the
broker must carry it, and the hub must store and show it (API and the device page in
Chromium); the steady one must stay quiet everywhere.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.keys import generate_keypair
from tests import waiting
from tests.bundles import make_tabular_bundle
from tests.edge.brokers import PrivateBroker, private_broker  # noqa: F401 - pytest fixture
from tests.services import need_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]
paho = pytest.importorskip("paho.mqtt.client")
CLI = [sys.executable, "-m", "edge.cli"]
SHIFTED, STEADY = "drift-shifted", "drift-steady"
FEATURE = 11  # sensor_11
CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "correct-horse-1"
wait_for = functools.partial(waiting.wait_for, interval=0.25)


class Telemetry:
    """Every telemetry payload on the broker, by device (an anonymous paho subscriber)."""

    def __init__(self, port: int) -> None:
        from paho.mqtt.enums import CallbackAPIVersion

        self.by_device: dict[str, list[dict[str, Any]]] = {}
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("edgekit/v1/+/telemetry", qos=1)
        self.client.loop_start()
        assert self.subscribed.wait(10), "no SUBACK from the broker"

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        payload = json.loads(msg.payload)
        with self.lock:
            self.by_device.setdefault(payload["device"], []).append(payload)

    def of(self, device: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.by_device.get(device, []))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Hub:
    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token

    def get(self, path: str) -> Any:
        req = urllib.request.Request(
            self.url + "/api/v1" + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())


@pytest.fixture
def hub(tmp_path: Path, private_broker: PrivateBroker) -> Iterator[Hub]:  # noqa: F811
    data = tmp_path / "hub"
    proc = subprocess.Popen(
        [*CLI, "hub", "serve", "--port", "0", "--data-dir", str(data),
         "--broker", private_broker.url],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().split()[-1]

    def cli(*args: str, stdin: str | None = None) -> str:
        out = subprocess.run([*CLI, "hub", *args, "--data-dir", str(data)], input=stdin,
                             capture_output=True, text=True, check=True)  # fmt: skip
        return out.stdout.strip().splitlines()[-1]

    try:
        cli("create-user", "vic", "--role", "viewer", "--password-stdin", stdin=PASSWORD + "\n")
        yield Hub(url, cli("create-token", "--role", "viewer"))
    finally:
        proc.terminate()
        proc.wait(15)


def test_one_shifted_feature_is_named_on_device_telemetry_and_hub(
    tmp_path: Path,
    hub: Hub,
    private_broker: PrivateBroker,  # noqa: F811
) -> None:
    priv, pub = generate_keypair(tmp_path / "keys")
    bundle, data = make_tabular_bundle(tmp_path / "sensors.ekb", priv)
    np.save(tmp_path / "shifted.npy", data.stream(1000, seed=20, shift={FEATURE: 2.0}))
    np.save(tmp_path / "steady.npy", data.stream(1000, seed=21))
    telemetry = Telemetry(private_broker.port)
    agents: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for dev, stream in ((SHIFTED, "shifted.npy"), (STEADY, "steady.npy")):
            log = (tmp_path / f"{dev}.log").open("w")
            agents[dev] = subprocess.Popen(
                [*CLI, "agent", "run", "--device-id", dev, "--broker", private_broker.url,
                 "--data-dir", str(tmp_path / dev), "--bundle", str(bundle),
                 "--trusted-key", str(pub), "--replay", str(tmp_path / stream),
                 "--replay-rate", "400", "--no-replay-loop",
                 "--telemetry-interval", "1", "--selftest-time-budget", "0.1"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

        def done(dev: str) -> dict[str, Any] | None:
            """The first telemetry after the whole stream was served."""
            return next((t for t in telemetry.of(dev) if t["inferences_total"] >= 1000), None)

        shifted = wait_for(lambda: done(SHIFTED), 90, "the shifted stream served")
        steady = wait_for(lambda: done(STEADY), 90, "the steady stream served")

        # in the telemetry message
        d = shifted["drift"]
        assert d["alert"] is True and "feature" in d["alert_on"], d
        assert d["worst"]["name"] == "sensor_11" and d["worst"]["psi"] > d["feature_threshold"]
        assert d["features"][0]["name"] == "sensor_11"
        assert d["input_psi"] < d["threshold"]  # the mean alone would have missed it
        assert all(t["drift"]["alert"] is False for t in telemetry.of(STEADY)), steady["drift"]
        assert steady["drift"]["worst"]["psi"] < steady["drift"]["feature_threshold"]

        # on the device: its own log names the feature
        logs = {dev: (tmp_path / f"{dev}.log").read_text() for dev in agents}
        assert "drift alert: feature sensor_11 PSI" in logs[SHIFTED], logs[SHIFTED][-3000:]
        assert "drift alert" not in logs[STEADY], logs[STEADY][-3000:]

        # on the hub: stored with since when, on which device
        def hub_drift() -> list[dict[str, Any]]:
            return list(hub.get(f"/devices/{SHIFTED}")["drift"])

        rows = wait_for(hub_drift, 30, "the hub storing the drifting feature")
        named = {r["name"]: r for r in rows}
        assert "sensor_11" in named and named["sensor_11"]["kind"] == "feature"
        assert named["sensor_11"]["since"] <= named["sensor_11"]["last_seen"]
        assert hub.get(f"/devices/{STEADY}")["drift"] == []
        fleet = hub.get("/drift?name=sensor_11")
        assert [r["device"] for r in fleet] == [SHIFTED]
        devices = {x["id"]: x for x in hub.get("/devices")}
        assert devices[SHIFTED]["kpis"]["drift_worst"]["name"] == "sensor_11"
        assert devices[STEADY]["kpis"]["drift_alert"] is False
        events = hub.get(f"/devices/{SHIFTED}/events")
        assert any(e["kind"] == "alert" and "sensor_11" in e["message"] for e in events)

        # on the hub's device page and fleet page, in Chromium
        check_pages(hub)
    finally:
        for p in agents.values():
            p.terminate()
        for p in agents.values():
            p.wait(15)
        telemetry.close()


def check_pages(hub: Hub) -> None:
    """The pages in Chromium, on a thread of its own: Playwright's sync API refuses a thread
    where another test's Playwright (the browser tests' session fixture) runs its loop."""
    need_service(CHROMIUM.exists(), f"the page check needs Chromium at {CHROMIUM}")
    failures: list[BaseException] = []

    def run() -> None:
        try:
            _check_pages(hub)
        except BaseException as exc:  # handed to the test's thread below
            failures.append(exc)

    thread = threading.Thread(target=run, name="pages")
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "the page check did not finish"
    if failures:
        raise failures[0]


def _check_pages(hub: Hub) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(f"{hub.url}/login")
            page.fill("#username", "vic")
            page.fill("#password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("#fleet td[data-drift=sensor_11]")
            assert "sensor_11" in page.inner_text(f"tr[data-device={SHIFTED}]")
            assert "sensor_11" not in page.inner_text(f"tr[data-device={STEADY}]")
            page.goto(f"{hub.url}/devices/{SHIFTED}")
            row = page.wait_for_selector("#drift tr[data-drift=sensor_11]")
            assert row is not None
            assert "sensor_11" in row.inner_text() and "ago" in row.inner_text()
            page.goto(f"{hub.url}/devices/{STEADY}")
            page.wait_for_selector("#drift td.empty")
            assert page.inner_text("#drift-state") == "No drift alert."
        finally:
            browser.close()
