"""The real agent (``edgekit agent run`` in a subprocess, a real Mosquitto) under a fake
systemd: a datagram socket as NOTIFY_SOCKET and WATCHDOG_USEC set. It must say READY=1
once connected and serving, ping WATCHDOG=1 at half the interval, STOPPING=1 on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.edge.brokers import PrivateBroker, private_broker  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]
pytest.importorskip("paho.mqtt.client")


def messages(sock: socket.socket, until: float) -> list[dict[str, str]]:
    """Every datagram received before ``until`` (monotonic), parsed."""
    out: list[dict[str, str]] = []
    while (left := until - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(4096).decode()
        except TimeoutError:
            break
        out.append(dict(line.split("=", 1) for line in data.split("\n")))
    return out


def wait_message(sock: socket.socket, key: str, timeout: float) -> tuple[dict[str, str], list]:
    """The first message with ``key`` and every message before it."""
    seen: list[dict[str, str]] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(deadline - time.monotonic())
        try:
            msg = dict(ln.split("=", 1) for ln in sock.recv(4096).decode().split("\n"))
        except TimeoutError:
            break
        seen.append(msg)
        if key in msg:
            return msg, seen
    raise AssertionError(f"no {key} within {timeout} s; got {seen}")


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_agent_notifies_ready_watchdog_and_stopping(
    tmp_path: Path,
    private_broker: PrivateBroker,  # noqa: F811 - the fixture
    kind: str,
) -> None:
    address = str(tmp_path / "notify.sock") if kind == "path" else f"@ek-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address if kind == "path" else b"\0" + address[1:].encode())
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "agent", "run", "--device-id", f"svc-{kind}",
         "--broker", private_broker.url, "--data-dir", str(tmp_path / "data"),
         "--telemetry-interval", "3600"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        ready, before = wait_message(sock, "READY", timeout=60)
        assert ready["READY"] == "1"
        assert ready["MAINPID"] == str(proc.pid)
        assert ready["STATUS"] == "no model; broker connected"
        assert next(m for m in before if "STATUS" in m)["STATUS"] == f"starting: device svc-{kind}"
        start = time.monotonic()
        pings = [m for m in messages(sock, start + 1.5) if m == {"WATCHDOG": "1"}]
        # every 0.2 s: about 7 in 1.5 s; a loaded CI machine may miss a few, never most
        assert len(pings) >= 4, pings
        proc.send_signal(signal.SIGTERM)
        stopping, _ = wait_message(sock, "STOPPING", timeout=10)
        assert stopping == {"STOPPING": "1", "STATUS": "stopping"}
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        sock.close()


def test_agent_outside_systemd_runs_as_before(
    tmp_path: Path,
    private_broker: PrivateBroker,  # noqa: F811
) -> None:
    """No NOTIFY_SOCKET: nothing is sent anywhere and the agent starts and stops cleanly."""
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "agent", "run", "--device-id", "svc-plain",
         "--broker", private_broker.url, "--data-dir", str(tmp_path / "data"),
         "--telemetry-interval", "3600"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "ready in" in line:
            proc.send_signal(signal.SIGTERM)
            break
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, "".join(lines) + out
    assert "stopping" in out
