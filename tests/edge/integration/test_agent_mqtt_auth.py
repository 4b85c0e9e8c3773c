"""MQTT username/password end to end, on a private Mosquitto with ``allow_anonymous false``
and a password file: the agent logs in, publishes its status and answers requests; with a
wrong password it says why, keeps running and retrying, and gets in once the broker
accepts it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge import contract as c
from tests.bundles import raw_digit
from tests.edge.agent_kit import kit_fixture  # noqa: F401 - pytest fixture "kit"
from tests.edge.brokers import MOSQUITTO, PrivateBroker, free_port
from tests.edge.integration.test_agent_mqtt import AgentProcess
from tests.services import need_service
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
paho = pytest.importorskip("paho.mqtt.client")
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
USER, PASSWORD = "cam-user", "s3cret-pass"  # the agent's login
OBSERVER, OBSERVER_PASSWORD = "observer", "watch-pass"  # the test client's own login


class AuthBroker(PrivateBroker):
    """A private Mosquitto that only lets in the users of its password file."""

    def __init__(self, workdir: Path) -> None:
        self.passwords = workdir / "passwords"
        set_password(self.passwords, USER, PASSWORD, create=True)
        set_password(self.passwords, OBSERVER, OBSERVER_PASSWORD)
        # Started as root, Mosquitto drops to user "mosquitto", which cannot read a file in
        # pytest's private tmp dir; "user root" keeps it as the user running the tests.
        stay = "user root\n" if os.geteuid() == 0 else ""
        extra = f"password_file {self.passwords}\n{stay}"
        super().__init__(workdir, free_port(), extra=extra, anonymous=False)

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its configuration and password file."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)


def set_password(path: Path, user: str, password: str, *, create: bool = False) -> None:
    assert MOSQUITTO_PASSWD is not None
    args = [MOSQUITTO_PASSWD, "-b", *(["-c"] if create else []), str(path), user, password]
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[AuthBroker]:
    if not Path(MOSQUITTO).exists():
        need_service(False, "mosquitto is not installed")
    if MOSQUITTO_PASSWD is None:
        need_service(False, "mosquitto_passwd is not installed (needed for a password file)")
    b = AuthBroker(tmp_path)
    b.start()
    try:
        yield b
    finally:
        b.stop()


class Client:
    """A logged-in paho client recording every message of one device."""

    def __init__(self, port: int, device: str, password: str = OBSERVER_PASSWORD) -> None:
        from paho.mqtt.enums import CallbackAPIVersion

        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.connected = threading.Event()
        self.refused: list[str] = []
        self.mqtt = paho.Client(CallbackAPIVersion.VERSION2)
        self.mqtt.username_pw_set(OBSERVER, password)
        self.mqtt.on_message = self._on_message
        self.mqtt.on_connect = self._on_connect
        self.filter = f"edgekit/v1/{device}/#"
        self.mqtt.connect("127.0.0.1", port, keepalive=5)
        self.mqtt.loop_start()

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self.refused.append(str(reason))
            return
        client.subscribe(self.filter, qos=1)
        self.connected.set()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        with self.lock:
            self.messages.append((msg.topic, msg.payload))

    def on(self, topic: str) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(p) for t, p in self.messages if t == topic and p]

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.mqtt.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def close(self) -> None:
        self.mqtt.loop_stop()
        self.mqtt.disconnect()


def agent_args(
    device: str, data: Path, broker: AuthBroker, kit: dict[str, Path], password: str
) -> list[str]:
    return [
        "--device-id", device, "--broker", broker.url, "--data-dir", str(data),
        "--username", USER, "--password", password, "--trusted-key", str(kit["pub"]),
        "--bundle", str(kit["v1"]), "--selftest-time-budget", "0.2",
        "--telemetry-interval", "3600",
    ]  # fmt: skip


def online_status(client: Client, device: str) -> dict[str, Any]:
    return wait_for(
        lambda: next(
            (s for s in client.on(c.topic(device, c.STATUS)) if s.get("state") == "online"), None
        ),
        60,
    )


def test_agent_logs_in_publishes_status_and_answers(
    broker: AuthBroker, kit: dict[str, Path], tmp_path: Path
) -> None:
    anonymous = Client(broker.port, "nobody", password="not-the-password")
    try:
        assert wait_for(lambda: anonymous.refused, 10), "the broker must refuse bad logins"
    finally:
        anonymous.close()
    client = Client(broker.port, "auth-1")
    assert client.connected.wait(10)
    agent = AgentProcess(agent_args("auth-1", tmp_path / "d", broker, kit, PASSWORD))
    try:
        status = online_status(client, "auth-1")
        assert status["model"]["version"] == 1
        client.publish(
            c.topic("auth-1", c.INFER_REQ), json.dumps({"id": "r1", "inputs": raw_digit()}).encode()
        )
        res = wait_for(lambda: next(iter(client.on(c.topic("auth-1", c.INFER_RES))), None), 20)
        assert res["id"] == "r1" and res["label"] in [str(i) for i in range(10)]
        assert agent.stop() == 0
        offline = wait_for(
            lambda: next(
                (s for s in client.on(c.topic("auth-1", c.STATUS)) if s["state"] == "offline"),
                None,
            ),
            20,
        )
        assert offline["device"] == "auth-1"
    finally:
        agent.stop()
        client.publish(c.topic("auth-1", c.STATUS), b"", retain=True)
        client.close()


def test_wrong_password_is_reported_and_retried(
    broker: AuthBroker, kit: dict[str, Path], tmp_path: Path
) -> None:
    client = Client(broker.port, "auth-2")
    assert client.connected.wait(10)
    agent = AgentProcess(agent_args("auth-2", tmp_path / "d", broker, kit, "wrong-password"))
    try:
        wait_for(lambda: agent.saw("broker refused the connection"), 30)
        assert any("not authorised" in ln.lower() or "not authorized" in ln.lower()
                   for ln in agent.lines if "refused" in ln)  # fmt: skip
        wait_for(lambda: agent.saw("refused the connection: Not authorized; retrying"), 30)
        assert agent.proc.poll() is None, "the agent must keep running"
        assert not client.on(c.topic("auth-2", c.STATUS))
        assert not any("Traceback" in ln for ln in agent.lines)
        # the operator fixes the broker side: the agent's next retry gets in
        set_password(broker.passwords, USER, "wrong-password")
        broker.reload()
        status = online_status(client, "auth-2")
        assert status["model"]["version"] == 1
        assert agent.stop() == 0
    finally:
        agent.stop()
        client.close()
