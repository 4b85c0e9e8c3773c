"""The demo's running services: the hub and the agents, as separate processes.

Everything is started through the public CLI (``edgekit hub serve``, ``edgekit agent
run``) and driven through the public REST API, exactly as an operator would, so the demo
proves the contract and not an in-process shortcut.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cloud.demo.broker import free_port, wait_for_port
from cloud.errors import DemoError
from edge.errors import ConfigError


def edgekit(*args: str, stdin: str | None = None, timeout: float = 600) -> str:
    """Run an edgekit command in a child process and return its stdout."""
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise DemoError(f"edgekit {' '.join(args[:3])} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        raise DemoError("command printed nothing")
    return lines[-1]


@dataclass
class Process:
    name: str
    proc: subprocess.Popen[bytes]
    log: IO[bytes]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def spawn(name: str, args: list[str], log_path: Path, env: dict[str, str] | None = None) -> Process:
    log = open(log_path, "ab")  # noqa: SIM115 - owned by the Process
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=None if env is None else {**os.environ, **env},
    )
    return Process(name, proc, log)


class HubRefusal(DemoError):
    """The hub answered with an HTTP error: its status and (JSON) body."""

    def __init__(self, message: str, status: int, body: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, body


@dataclass
class HubClient:
    """The REST API with a Bearer token; every error becomes a DemoError with the body."""

    url: str
    token: str

    def call(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Any:
        data = None
        headers = {"Authorization": f"Bearer {self.token}"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            text = exc.read()
            try:
                parsed = json.loads(text)
            except ValueError:
                parsed = None
            msg = f"{method} {path}: {exc.code} {text[:300]!r}"
            raise HubRefusal(msg, exc.code, parsed) from exc
        except OSError as exc:
            raise DemoError(f"{method} {path}: {exc}") from exc
        return json.loads(raw) if raw else None

    def attempt(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """Like :meth:`call`, but an HTTP error answer is returned as ``(status, body)``
        instead of raised: for the refusals the story expects (the champion check's 409)."""
        try:
            return 200, self.call(method, path, body)
        except HubRefusal as exc:
            return exc.status, exc.body

    def upload(self, bundle: Path) -> dict[str, Any]:
        boundary = uuid.uuid4().hex
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="bundle"; '
                f'filename="{bundle.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
            ).encode()
            + bundle.read_bytes()
            + f"\r\n--{boundary}--\r\n".encode()
        )
        req = urllib.request.Request(
            self.url + "/api/v1/models",
            data=body,
            method="POST",
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": f"multipart/form-data; boundary={boundary}",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return dict(json.loads(resp.read()))
        except urllib.error.HTTPError as exc:
            raise DemoError(f"upload {bundle.name}: {exc.code} {exc.read()[:300]!r}") from exc


@dataclass
class Fleet:
    """The hub and agents the demo runs; ``stop()`` ends them all."""

    root: Path
    broker: str
    public_key: Path
    db_url: str = ""
    broker_auth: bool = False  # the embedded broker: the hub logs in with its demo account
    processes: list[Process] = field(default_factory=list)
    hub_url: str = ""
    password: str = ""
    api: HubClient | None = None

    def start_hub(self) -> HubClient:
        data = self.root / "hub"
        data.mkdir(parents=True, exist_ok=True)
        self.db_url = self.db_url or f"sqlite:///{data / 'hub.db'}"
        common = ["--db", self.db_url, "--data-dir", str(data)]
        self.password = uuid.uuid4().hex[:12]
        edgekit(
            "hub",
            "create-user",
            "admin",
            "--role",
            "admin",
            "--password-stdin",
            *common,
            stdin=self.password + "\n",
        )
        token = last_line(
            edgekit("hub", "create-token", "--role", "admin", "--name", "demo", *common)
        )
        env = self._hub_login() if self.broker_auth else None
        port = free_port()
        self.hub_url = f"http://127.0.0.1:{port}"
        self.processes.append(
            spawn(
                "hub",
                [
                    "hub",
                    "serve",
                    *common,
                    "--broker",
                    self.broker,
                    "--port",
                    str(port),
                    "--trusted-key",
                    str(self.public_key),
                    "--public-url",
                    self.hub_url,
                    # amqtt speaks 3.1.1 only and misreads an MQTT 5 CONNECT that carries a
                    # login (no CONNACK comes back), so the hub's auto-downgrade never starts
                    *(["--mqtt-version", "3.1.1"] if self.broker_auth else []),
                ],
                self.root / "hub.log",
                env,
            )
        )
        if not wait_for_port("127.0.0.1", port, 60):
            raise DemoError(f"the hub did not start; see {self.root / 'hub.log'}")
        self.api = HubClient(self.hub_url, token)
        return self.api

    def _hub_login(self) -> dict[str, str]:
        """The hub's account on the embedded broker, created in the database the broker
        reads, handed to ``hub serve`` in its environment (never on a command line)."""
        from cloud.demo.broker_auth import DEMO_HUB_SECRET, DEMO_HUB_USERNAME
        from cloud.hub.broker import new_password
        from cloud.hub.storage import Database, secrets

        db = Database(self.db_url)
        try:
            with db.session() as s:
                password = secrets.get_or_create(s, DEMO_HUB_SECRET, new_password)
        finally:
            db.dispose()
        return {"EDGEKIT_HUB_MQTT_USERNAME": DEMO_HUB_USERNAME,
                "EDGEKIT_HUB_MQTT_PASSWORD": password}  # fmt: skip

    def start_agent(self, device: str, tags: list[str], replay: Path, **opts: Any) -> None:
        common = ["--db", self.db_url, "--data-dir", str(self.root / "hub")]
        enroll = last_line(edgekit("hub", "enroll-token", "--tags", ",".join(tags), *common))
        data = self.root / "agents" / device
        data.mkdir(parents=True, exist_ok=True)
        args = [
            "agent",
            "run",
            "--device-id",
            device,
            "--broker",
            self.broker,
            "--data-dir",
            str(data),
            "--trusted-key",
            str(self.public_key),
            "--hub",
            self.hub_url,
            "--enroll-token",
            enroll,
            "--replay",
            str(replay),
        ]
        for key, value in opts.items():
            args += ["--" + key.replace("_", "-"), str(value)]
        self.processes.append(spawn(device, args, self.root / f"agent-{device}.log"))

    def check_alive(self) -> None:
        dead = [p.name for p in self.processes if not p.alive()]
        if dead:
            raise DemoError(f"process(es) exited early: {', '.join(dead)}; see {self.root}/*.log")

    def stop(self) -> None:
        for p in reversed(self.processes):
            p.stop()
        self.processes.clear()


def wait_until(what: str, predicate: Any, timeout: float, interval: float = 0.5) -> Any:
    """Poll ``predicate()`` until it returns something truthy; DemoError on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise DemoError(f"timed out after {timeout:.0f} s waiting for {what}")


def broker_login(url: str, username: str | None, password: str | None, timeout: float = 10) -> str:
    """Log in to the broker once (MQTT 3.1.1) and return its CONNACK reason ("Success", or
    why it refused), to show the demo's broker really checks accounts."""
    import threading
    from urllib.parse import urlsplit

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    parts = urlsplit(url)
    answered, reason = threading.Event(), ["no answer"]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if username is not None:
        client.username_pw_set(username, password)

    def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        reason[0] = str(rc)
        answered.set()

    client.on_connect = on_connect
    client.reconnect_delay_set(3600, 3600)
    try:
        client.connect(parts.hostname or "127.0.0.1", parts.port or 1883, keepalive=10)
    except OSError as exc:
        return f"cannot connect: {exc}"
    client.loop_start()
    try:
        answered.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return reason[0]


def require_broker_url(url: str) -> str:
    if not url.startswith(("mqtt://", "mqtts://")):
        raise ConfigError(f"--broker must be mqtt://HOST:PORT or mqtts://HOST:PORT, got {url!r}")
    return url
