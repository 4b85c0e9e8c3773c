"""``edgekit agent run --hub URL --enroll-token T`` against a real ``edgekit hub serve``
(SQLite in tmp_path): credentials stored 0600, the hub lists the device as enrolled with
the token's tags, a second use of the token is refused with a clear one-line error."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.edge.brokers import PrivateBroker, free_port, private_broker  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]
pytest.importorskip("flask", reason="the hub needs the 'hub' extra")
pytest.importorskip("waitress", reason="the hub needs the 'hub' extra")

CLI = [sys.executable, "-m", "edge.cli"]
TAGS = ["lab", "eu-west"]


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


class Hub:
    """``edgekit hub serve --port 0`` with its own SQLite database."""

    def __init__(self, root: Path) -> None:
        self.data = root / "hub"
        self.db = f"sqlite:///{self.data / 'hub.db'}"
        self.data.mkdir()
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def cli(self, *args: str) -> str:
        """Run a hub sub-command on this hub's database; its last output line."""
        done = run_cli("hub", *args, "--db", self.db, "--data-dir", str(self.data))
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*CLI, "hub", "serve", "--port", "0", "--db", self.db, "--data-dir", str(self.data)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().split()[-1]
        assert self.url.startswith("http://"), f"hub did not start: {self.url!r}"
        assert self.proc.stdout.readline().startswith("port ")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)

    def get(self, path: str, token: str) -> Any:
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path)
    h.start()
    try:
        yield h
    finally:
        h.stop()


def run_agent(
    hub: Hub, broker: PrivateBroker, device: str, data_dir: Path, token: str
) -> tuple[int, str, str]:
    """Run the agent until it says it serves, then stop it with SIGTERM."""
    proc = subprocess.Popen(
        [*CLI, "agent", "run", "--device-id", device, "--broker", broker.url,
         "--data-dir", str(data_dir), "--hub", hub.url, "--enroll-token", token,
         "--allow-unsigned", "--telemetry-interval", "3600"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    out: list[str] = []
    for line in proc.stdout:
        out.append(line)
        if "serving" in line:
            proc.terminate()
            break
    # Shutdown joins the installer (5 s), the transport dispatcher (5 s) and the outbox
    # drainer (10 s) with bounded waits; allow them all, then say what the agent was doing.
    try:
        rest, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        rest, err = proc.communicate()
        raise AssertionError(f"agent did not stop within 60 s of SIGTERM:\n{err[-3000:]}") from None
    return proc.wait(), "".join(out) + rest, err


def test_enroll_once_with_a_real_hub(
    hub: Hub,
    private_broker: PrivateBroker,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    broker = private_broker
    enroll_token = hub.cli("enroll-token", "--tags", ",".join(TAGS))
    viewer = hub.cli("create-token", "--role", "viewer")
    data = tmp_path / "agent-1"

    code, out, err = run_agent(hub, broker, "cam-enr-1", data, enroll_token)
    assert code == 0, err
    assert f"enrolled (tags: {', '.join(TAGS)})" in out
    creds_file = data / "credentials.json"
    assert stat.S_IMODE(creds_file.stat().st_mode) == 0o600
    creds = json.loads(creds_file.read_text())
    assert creds["device"] == "cam-enr-1" and creds["tags"] == TAGS
    assert creds["token"].startswith("ekd") and creds["hub"] == hub.url
    # the hub's command key comes with the credentials: the agent now trusts it (no warning)
    assert creds["command_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert "every command is refused" not in err

    device = hub.get("/api/v1/devices/cam-enr-1", viewer)
    assert device["enrolled"] is True and sorted(device["tags"]) == sorted(TAGS)

    # the same data dir starts again without enrolling (the token is spent)
    code, out, err = run_agent(hub, broker, "cam-enr-1", data, enroll_token)
    assert code == 0, err
    assert "enrolling" not in out
    assert json.loads(creds_file.read_text())["token"] == creds["token"]

    # a second device with the same token is refused: one clear line, nothing stored
    other = tmp_path / "agent-2"
    code, out, err = run_agent(hub, broker, "cam-enr-2", other, enroll_token)
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        "error: hub refused enrollment (HTTP 401): enrollment token is unknown, used or expired"
    )
    assert "Traceback" not in err
    assert not (other / "credentials.json").exists()
    listed = {d["id"]: d for d in hub.get("/api/v1/devices", viewer)}
    assert "cam-enr-2" not in listed and listed["cam-enr-1"]["enrolled"] is True


def test_unreachable_hub_is_a_clear_error(tmp_path: Path) -> None:
    done = run_cli(
        "agent", "run", "--device-id", "cam-x", "--data-dir", str(tmp_path / "d"),
        "--hub", f"http://127.0.0.1:{free_port()}", "--enroll-token", "eke_nope",
        "--broker", f"mqtt://127.0.0.1:{free_port()}",
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: cannot reach hub at http://")
    assert not (tmp_path / "d" / "credentials.json").exists()
