"""What the fault tests share: a restartable private Mosquitto (persistent sessions, as a
production broker is run), ``edgekit hub serve`` that can be killed and started again on
the same database and port, enrolled agents, and the telemetry ledger (hub rows vs what the
agent produced)."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from edge import contract as c
from edge.messaging import Outbox
from tests.edge.brokers import PrivateBroker, free_port
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "edge.cli"]


class PersistentBroker(PrivateBroker):
    """A private Mosquitto that keeps sessions and queued QoS 1 messages across restarts,
    crashes included: it saves its database every second (``autosave_interval``; Mosquitto's
    default of 1800 s loses every subscription made in the last half hour to a crash, and
    then what devices publish before their subscribers are back is acknowledged and lost)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir, port or free_port())
        # started as root, Mosquitto becomes user "mosquitto", which cannot write the test's
        # directory: every save failed ("Permission denied") and nothing survived a restart
        user = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {workdir}/\nautosave_interval 1\n"
            f"max_queued_messages 100000\n{user}"
        )

    def saved(self) -> bool:
        """True once the broker wrote its database (what a crash restarts from)."""
        return (Path(str(self.conf.parent)) / "mosquitto.db").exists()

    def kill(self) -> None:
        """SIGKILL: a crash, not a clean shutdown (the persistence file is what was saved)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


class Hub:
    """``edgekit hub serve`` on ``data`` (SQLite) at a fixed port, so agents keep the same
    hub URL across a restart."""

    def __init__(
        self, data: Path, broker_url: str, trusted_key: Path, log: Path,
        public_url: str | None = None, port: int | None = None, extra: tuple[str, ...] = (),
    ) -> None:  # fmt: skip
        self.data, self.broker_url, self.trusted_key, self.log = data, broker_url, trusted_key, log
        self.extra = extra  # more ``hub serve`` flags
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.public_url = public_url  # where agents reach it (a FaultProxy), if not self.url
        self.proc: subprocess.Popen[str] | None = None
        self.start()
        self.token = self.cli("create-token", "--role", "operator")

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*CLI, "-v", "hub", "serve", "--port", str(self.port), "--data-dir", str(self.data),
             "--broker", self.broker_url, "--trusted-key", str(self.trusted_key),
             *(["--public-url", self.public_url] if self.public_url else []), *self.extra],
            stdout=subprocess.PIPE, stderr=self.log.open("a"), text=True, cwd=ROOT,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.split() and line.split()[-1] == self.url, (line, self.log.read_text()[-2000:])

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
            self.proc = None

    def cli(self, *args: str) -> str:
        out = subprocess.run([*CLI, "hub", *args, "--data-dir", str(self.data)],
                             capture_output=True, text=True, check=True, cwd=ROOT)  # fmt: skip
        return out.stdout.strip().splitlines()[-1]

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.url + "/api/v1" + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def upload(self, bundle: Path) -> None:
        cmd = [*CLI, "hub", "upload", str(bundle), "--hub", self.url, "--token", self.token]
        up = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        assert up.returncode == 0, up.stderr

    def version_of(self, device: str) -> int | None:
        try:
            seen = {d["id"]: d for d in self.api("GET", "/devices")}
        except (OSError, urllib.error.URLError):
            return None
        d = seen.get(device)
        return (d.get("model") or {}).get("version") if d else None

    def rollout(self, version: int, tags: list[str], waves: list[int], **extra: Any) -> str:
        body = {"model": "digits", "version": version, "target": {"tags": tags},
                "waves": waves, "gates": {"p95_latency_ms": None}, **extra}  # fmt: skip
        return str(self.api("POST", "/rollouts", body)["id"])

    def rollout_ended(self, rid: str, timeout: float = 240) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            r = self.api("GET", f"/rollouts/{rid}")
            return r if r["state"] in ("completed", "paused", "rolled_back", "aborted") else None

        return dict(wait_for(done, timeout, "the rollout's end", interval=0.5))

    def telemetry_seqs(self, device: str) -> dict[str, set[int]]:
        """Telemetry seqs the hub stored for ``device``, per boot (its database rows)."""
        with sqlite3.connect(self.data / "hub.db", timeout=10) as db:
            rows = db.execute(
                "SELECT boot, seq FROM telemetry_raw WHERE device_id = ?", (device,)
            ).fetchall()
        out: dict[str, set[int]] = {}
        for boot, seq in rows:
            out.setdefault(boot, set()).add(int(seq))
        return out


class Agent:
    """``edgekit agent run`` enrolled on ``hub`` (reached at ``hub.public_url`` when set),
    or on no hub at all (``hub=None``: then ``trusted_key`` is needed); output goes to a
    log file."""

    def __init__(
        self, hub: Hub | None, device: str, data: Path, broker_url: str, bundle: Path,
        *extra: str, tags: str = "faults", env: dict[str, str] | None = None,
        preexec: Any = None, prefix: list[str] | None = None, trusted_key: Path | None = None,
        log_dir: Path | None = None,
    ) -> None:  # fmt: skip
        self.device, self.data = device, data
        self.log = (log_dir or data.parent) / f"{device}.log"
        self._http_url: str | None = None  # the agent picks a free port (0) and logs it
        key = trusted_key or (hub.trusted_key if hub else None)
        assert key is not None, "an agent without a hub needs trusted_key"
        enrolled: list[str] = []
        if hub is not None:
            enroll = hub.cli("enroll-token", "--tags", tags)
            enrolled = ["--hub", hub.public_url or hub.url, "--enroll-token", enroll]
        self.proc = subprocess.Popen(
            [*(prefix or []), *CLI, "-v", "agent", "run", "--device-id", device,
             "--broker", broker_url, "--data-dir", str(data), "--bundle", str(bundle),
             "--trusted-key", str(key), *enrolled,
             "--telemetry-interval", "0.5", "--probation-seconds", "1",
             "--probation-min-inferences", "0", "--selftest-time-budget", "0.2",
             "--http-port", "0", *extra],
            stdout=self.log.open("w"), stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, preexec_fn=preexec,
        )  # fmt: skip

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def metric(self, name: str) -> float | None:
        """One series of the agent's ``GET /metrics`` (None while it does not answer)."""
        if self._http_url is None:
            # a port chosen here and passed in could be taken by another process meanwhile
            found = re.search(r"local HTTP API on (http://\S+)", self.text())
            if found is None:
                return None
            self._http_url = found.group(1).rstrip("/")
        url = f"{self._http_url}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def outbox_telemetry_seqs(data: Path) -> dict[str, set[int]]:
    """Telemetry still in a stopped agent's outbox (produced, not yet acknowledged)."""
    out: dict[str, set[int]] = {}
    with Outbox(data / "outbox") as box:
        for rec in box.pending():
            if rec.topic.endswith("/telemetry"):
                t = json.loads(rec.payload)
                out.setdefault(t["boot"], set()).add(int(t["seq"]))
    return out


class TelemetryLost(AssertionError):
    """Telemetry the agent produced (and the broker acknowledged) never reached the hub."""


class EventsLost(AssertionError):
    """Deploy events the agent published (and the broker acknowledged) never reached the hub."""


def lost_telemetry(hub: Hub, agent: Agent) -> dict[str, list[int]]:
    """Per boot, the seqs from 0 to the last one produced that are neither in the hub's rows
    nor still in the (stopped) agent's outbox."""
    assert not agent.alive()
    stored, queued = hub.telemetry_seqs(agent.device), outbox_telemetry_seqs(agent.data)
    assert stored, "the hub stored no telemetry"
    out = {}
    for boot in set(stored) | set(queued):
        seqs = stored.get(boot, set()) | queued.get(boot, set())
        if missing := sorted(set(range(max(seqs) + 1)) - seqs):
            out[boot] = missing
    return out


def assert_no_telemetry_lost(hub: Hub, agent: Agent) -> dict[str, int]:
    """After the agent stopped: every telemetry seq it produced is at the hub or still in its
    outbox (waits for the hub's writer to catch up). Returns the hub's rows per boot."""
    try:
        wait_for(lambda: not lost_telemetry(hub, agent), 20, "the hub storing every seq")
    except AssertionError:
        missing = lost_telemetry(hub, agent)
        if missing:
            raise TelemetryLost(f"telemetry seqs lost (boot: seqs): {missing}") from None
    return {b: len(s) for b, s in hub.telemetry_seqs(agent.device).items()}


class Mqtt:
    """A paho client on the broker (not through any proxy) that records messages by topic."""

    def __init__(self, port: int, client_id: str = "", clean: bool = True) -> None:
        import threading

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.lock = threading.Lock()
        self.messages: list[tuple[str, bytes, bool]] = []
        self.filters: list[str] = []
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=clean)  # fmt: skip
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def _on_connect(self, client: Any, *_a: Any) -> None:
        for f in self.filters:
            client.subscribe(f, qos=1)

    def subscribe(self, topic_filter: str) -> None:
        self.filters.append(topic_filter)
        self.client.subscribe(topic_filter, qos=1)

    def on(self, topic: str) -> list[dict[str, Any]]:
        with self.lock:
            found = [p for t, p, _r in self.messages if t == topic]
        out = []
        for p in found:
            try:
                out.append(json.loads(p))
            except ValueError:
                continue
        return out

    def infer(self, device: str, rid: str, inputs: Any, timeout: float = 30) -> dict[str, Any]:
        """An ``infer/req`` over MQTT and its answer; returns the answer and its round trip."""
        import time

        res_topic = c.topic(device, c.INFER_RES)
        if res_topic not in self.filters:
            self.subscribe(res_topic)
            wait_for(lambda: self.client.is_connected(), 10, "the MQTT client")
        t0 = time.monotonic()
        body = json.dumps({"id": rid, "inputs": inputs}).encode()
        self.client.publish(c.topic(device, c.INFER_REQ), body, qos=1).wait_for_publish(10)

        def answer() -> dict[str, Any] | None:
            return next((r for r in self.on(res_topic) if r.get("id") == rid), None)

        res = dict(wait_for(answer, timeout, f"the answer to {rid}"))
        res["round_trip_s"] = time.monotonic() - t0
        return res

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def seqs_seen(observer: Mqtt, device: str) -> dict[str, set[int]]:
    """The telemetry seqs the observer got from ``device``, per boot."""
    out: dict[str, set[int]] = {}
    for t in observer.on(c.topic(device, c.TELEMETRY)):
        out.setdefault(t["boot"], set()).add(int(t["seq"]))
    return out


def highest(seqs: dict[str, set[int]]) -> int:
    return max((max(s) for s in seqs.values()), default=-1)


def contiguous_to(seqs: dict[str, set[int]], last: int) -> bool:
    """Some boot has every seq from 0 on, up to at least ``last``."""
    return any(max(s) >= last and s == set(range(max(s) + 1)) for s in seqs.values())
