"""``edgekit simulate`` as a process: devices without a model still report (a heartbeat, as
the agent sends one, so the hub does not sweep them offline), SIGTERM stops every child
cleanly (retained ``offline``), and children of a parent killed with -9 stop on their own."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import psutil
import pytest

from tests.services import need_service
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[3]
N = 6


class Watch:
    """The latest status and the telemetry count per device of one prefix."""

    def __init__(self, prefix: str) -> None:
        self.status: dict[str, str] = {}
        self.heartbeats: dict[str, int] = {}
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"watch-{prefix}")
        self.c.on_message = self._on
        try:
            self.c.connect("127.0.0.1", 1883)
        except OSError:
            need_service(False, "Mosquitto on 127.0.0.1:1883")
        self.c.loop_start()
        self.prefix = f"edgekit/v1/{prefix}-"
        self.c.subscribe([("edgekit/v1/+/status", 1), ("edgekit/v1/+/telemetry", 0)])

    def _on(self, _c: object, _u: object, m: mqtt.MQTTMessage) -> None:
        if not m.topic.startswith(self.prefix):
            return
        body = json.loads(m.payload)
        with self.lock:
            if m.topic.endswith("/status"):
                self.status[body["device"]] = body["state"]
            elif body.get("model") is None:
                self.heartbeats[body["device"]] = self.heartbeats.get(body["device"], 0) + 1

    def states(self) -> set[str]:
        with self.lock:
            return set(self.status.values()) if len(self.status) == N else set()

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


@pytest.fixture
def sim() -> Iterator[tuple[subprocess.Popen[bytes], Watch]]:
    prefix = f"sp{uuid.uuid4().hex[:6]}"
    watch = Watch(prefix)
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "simulate", "--devices", str(N), "--processes", "2",
         "--broker", "mqtt://127.0.0.1:1883", "--trusted-key", str(REPO / "models/dev-signing.pub"),
         "--prefix", prefix, "--telemetry-interval", "0.5"],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: watch.states() == {"online"}, 60, "every simulated device online")
        yield proc, watch
    finally:
        for child in psutil.Process().children(recursive=True):
            if child.pid == proc.pid or proc.pid in [p.pid for p in child.parents()]:
                child.kill()
        proc.kill()
        proc.wait(10)
        watch.close()


def test_devices_without_a_model_send_heartbeats_and_sigterm_stops_them_all(
    sim: tuple[subprocess.Popen[bytes], Watch],
) -> None:
    proc, watch = sim
    wait_for(lambda: len([n for n in watch.heartbeats.values() if n >= 2]) == N, 30,
             "two heartbeats (model null) from every device")  # fmt: skip
    children = psutil.Process(proc.pid).children(recursive=True)
    assert len(children) >= 2
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    wait_for(lambda: watch.states() == {"offline"}, 20, "every device said offline")
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def test_children_of_a_killed_parent_stop(sim: tuple[subprocess.Popen[bytes], Watch]) -> None:
    proc, watch = sim
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.kill()
    proc.wait(10)
    _gone, alive = psutil.wait_procs(children, timeout=20)
    assert alive == [], "simulator processes outlived their parent"
    wait_for(lambda: watch.states() == {"offline"}, 20, "every device said offline")
