"""Agent subprocesses against the real Mosquitto: status and will, inference, malformed
payloads, a broker outage (every telemetry seq arrives), and SIGKILL at every install step."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge import contract as c
from tests.bundles import raw_digit
from tests.commands import command, write_hub_key
from tests.edge.agent_helpers import FileServer
from tests.edge.agent_kit import kit_fixture  # noqa: F401 - pytest fixture "kit"
from tests.edge.brokers import MOSQUITTO, PrivateBroker, free_port
from tests.services import need_service
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
paho = pytest.importorskip("paho.mqtt.client")
ROOT = Path(__file__).resolve().parents[3]
BROKER = "mqtt://127.0.0.1:1883"


def broker_up(port: int = 1883) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _need_mosquitto() -> None:
    if not broker_up():
        need_service(False, "no Mosquitto on 127.0.0.1:1883")


class Client:
    """A paho client that records every message by topic."""

    def __init__(self, port: int = 1883, client_id: str = "", clean: bool = True) -> None:
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.mqtt = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean
        )
        self.filters: list[str] = []
        self.mqtt.on_message = self._on_message
        self.mqtt.on_connect = lambda cl, *_a: [cl.subscribe(f, qos=1) for f in self.filters]
        self.mqtt.reconnect_delay_set(0.1, 1)
        self.mqtt.connect("127.0.0.1", port, keepalive=5)
        self.mqtt.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def subscribe(self, topic_filter: str) -> None:
        self.filters.append(topic_filter)
        self.mqtt.subscribe(topic_filter, qos=1)

    def on(self, topic: str) -> list[dict[str, Any]]:
        with self.lock:
            found = [p for t, p, _r in self.messages if t == topic]
        out = []
        for p in found:
            with contextlib.suppress(ValueError):
                out.append(json.loads(p))
        return out

    def publish(self, topic: str, payload: bytes) -> None:
        self.mqtt.publish(topic, payload, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.mqtt.loop_stop()
        self.mqtt.disconnect()


class AgentProcess:
    """``edgekit agent run`` in a subprocess; stderr lines are collected."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "-v", "agent", "run", *args],
            cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def saw(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode


@pytest.fixture
def device() -> str:
    return f"it-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def client(device: str) -> Iterator[Client]:
    cl = Client()
    cl.subscribe(f"edgekit/v1/{device}/#")
    yield cl
    cl.publish(c.topic(device, c.STATUS), b"")  # clear the retained status
    cl.close()


def agent_args(device: str, data: Path, kit: dict[str, Path], *extra: str) -> list[str]:
    return [
        "--device-id", device, "--broker", BROKER, "--data-dir", str(data),
        "--trusted-key", str(kit["pub"]), "--telemetry-interval", "1",
        "--selftest-time-budget", "0.2", "--command-keys", str(write_hub_key(kit["pub"].parent)),
        *extra,
    ]  # fmt: skip


def online(client: Client, device: str, not_boot: str | None = None) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        for s in reversed(client.on(c.topic(device, c.STATUS))):
            if s.get("state") == "online" and s.get("boot") != not_boot:
                return s
        return None

    return wait_for(find, 60)


def infer(client: Client, device: str, rid: str, payload: Any) -> dict[str, Any]:
    client.publish(
        c.topic(device, c.INFER_REQ), json.dumps({"id": rid, "inputs": payload}).encode()
    )
    return wait_for(
        lambda: next((r for r in client.on(c.topic(device, c.INFER_RES)) if r["id"] == rid), None),
        20,
    )


# ----------------------------------------------------------------------------- status, inference


def test_status_will_and_requests(
    tmp_path: Path, kit: dict[str, Path], device: str, client: Client
) -> None:
    agent = AgentProcess(agent_args(device, tmp_path, kit, "--bundle", str(kit["v1"])))
    try:
        status = online(client, device)
        assert status["model"]["version"] == 1 and status["capabilities"]["cores"] >= 1
        res = infer(client, device, "r1", raw_digit())
        assert res["version"] == 1 and len(res["scores"]) == 10 and res["latency_ms"] > 0
        req = c.topic(device, c.INFER_REQ)
        client.publish(req, b"this is not json")
        client.publish(req, json.dumps({"schema": "other/9", "foo": 1}).encode())
        client.publish(req, b"{" + b" " * (10 * 1024 * 1024) + b"}")  # 10 MB
        client.publish(req, json.dumps({"id": "wrong", "inputs": {"x": 1}}).encode())
        wrong = infer(client, device, "wrong", {"x": 1})
        assert wrong["error"]["code"]
        assert infer(client, device, "r2", raw_digit())["label"]  # still serving

        def malformed() -> list[dict[str, Any]]:
            tel = client.on(c.topic(device, c.TELEMETRY))
            return [t for t in tel if t["rejected_inputs"].get("malformed")]

        tel = wait_for(malformed, 20)
        assert tel[0]["rejected_inputs"]["malformed"] >= 2
        agent.kill()
        offline = wait_for(
            lambda: [s for s in client.on(c.topic(device, c.STATUS)) if s["state"] == "offline"], 20
        )
        assert offline[-1]["boot"] == status["boot"]
    finally:
        agent.stop()


# ----------------------------------------------------------------------------- outage


class PersistentBroker(PrivateBroker):
    """A private Mosquitto that keeps sessions across restarts (so the consumer's
    subscription and its queued QoS 1 messages survive the outage)."""

    def __init__(self, workdir: Path, port: int) -> None:
        super().__init__(workdir, port)
        self.conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {workdir}/\nmax_queued_messages 100000\n"
        )


def test_outage_every_telemetry_seq_arrives(
    tmp_path: Path, kit: dict[str, Path], device: str
) -> None:
    if not Path(MOSQUITTO).exists():
        need_service(False, "mosquitto binary not installed")
    broker = PersistentBroker(tmp_path, free_port())
    broker.start()
    replay = tmp_path / "replay.npz"
    rng = np.random.default_rng(0)
    np.savez(replay, x=rng.integers(1, 17, (50, 8, 8)).astype(float), y=rng.integers(0, 10, 50))
    consumer = Client(broker.port, client_id=f"consumer-{device}", clean=False)
    consumer.subscribe(c.topic(device, c.TELEMETRY))
    args = agent_args(device, tmp_path / "data", kit, "--bundle", str(kit["v1"]))
    args[args.index("--broker") + 1] = broker.url
    args += ["--telemetry-interval", "0.4", "--replay", str(replay), "--replay-rate", "20"]
    agent = AgentProcess(args)
    try:
        wait_for(lambda: len(consumer.on(c.topic(device, c.TELEMETRY))) >= 3, 60)
        broker.stop()
        time.sleep(4)  # the agent keeps inferring; telemetry piles up in its outbox
        broker.start()
        before = max(t["seq"] for t in consumer.on(c.topic(device, c.TELEMETRY)))

        def complete() -> bool:
            seqs = {t["seq"] for t in consumer.on(c.topic(device, c.TELEMETRY))}
            return len(seqs) >= before + 12 and seqs == set(range(max(seqs) + 1))

        wait_for(complete, 60)
        tel = consumer.on(c.topic(device, c.TELEMETRY))
        assert len({t["boot"] for t in tel}) == 1
        during = [t for t in tel if before < t["seq"] <= before + 8]
        assert sum(t["inferences"] for t in during) > 0  # inference went on during the outage
        assert agent.proc.poll() is None
    finally:
        agent.stop()
        consumer.close()
        broker.stop()


# ------------------------------------------------------------------------ SIGKILL at every step

STEPS = ["downloading", "verifying", "self_test", "shadow", "activating", "probation"]


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_every_install_step(
    tmp_path: Path,
    kit: dict[str, Path],
    device: str,
    client: Client,
    step: str,
) -> None:
    files = FileServer()
    url = files.add(kit["v2"])
    extra = ["--bundle", str(kit["v1"]), "--probation-seconds", "30", "--shadow-inputs", "3"]
    extra += ["--replay", str(_replay_file(tmp_path)), "--replay-rate", "20"]
    extra += ["--download-origins", f"http://127.0.0.1:{files.port}"]
    env = {"EDGEKIT_TEST_PAUSE_AT": step, "EDGEKIT_TEST_PAUSE_SECONDS": "120"}
    agent = AgentProcess(agent_args(device, tmp_path / "data", kit, *extra), env)
    try:
        first = online(client, device)
        cmd = command(
            "deploy", device, id=f"deploy-{step}", name="digits", version=2, url=url,
            sha256=hashlib.sha256(kit["v2"].read_bytes()).hexdigest(),
            size=kit["v2"].stat().st_size, rollout="r-kill", ttl=600,
        )  # fmt: skip
        client.publish(c.topic(device, c.CMD), json.dumps(cmd).encode())
        wait_for(lambda: agent.saw(f"pausing 120 s at step {step}"), 60)
        agent.kill()
        again = AgentProcess(agent_args(device, tmp_path / "data", kit))
        try:
            status = online(client, device, not_boot=first["boot"])
            assert status["model"]["version"] == 1, status  # the verified old model
            res = infer(client, device, f"after-{step}", raw_digit())
            assert res["version"] == 1 and res["label"]

            def report() -> dict[str, Any] | None:
                for e in client.on(c.topic(device, c.EVENTS)):
                    if e["command"] == cmd["id"] and e["step"] in ("failed", "rolled_back"):
                        return e
                return None

            event = wait_for(report, 30)
            assert f"restarted during {step}" in event["detail"]["reason"]
            expected = (
                "failed"
                if step in ("downloading", "verifying", "self_test", "shadow")
                else "rolled_back"
            )
            assert event["step"] == expected
        finally:
            again.stop()
    finally:
        if agent.proc.poll() is None:
            agent.kill()
        files.close()


def _replay_file(tmp: Path) -> Path:
    p = tmp / "replay.npy"
    np.save(p, np.random.default_rng(0).integers(1, 17, (30, 8, 8)).astype(float))
    return p
