"""A private Mosquitto on a free port, for tests that stop and restart the broker.

Import the fixture where needed: ``from tests.edge.brokers import private_broker``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import need_service

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateBroker:
    """A Mosquitto we own, so tests can stop and restart it (outages)."""

    def __init__(self, workdir: Path, port: int, extra: str = "", anonymous: bool = True) -> None:
        self.port = port
        self.url = f"mqtt://127.0.0.1:{port}"
        self.conf = workdir / "mosquitto.conf"
        allow = "true" if anonymous else "false"
        self.conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous {allow}\n{extra}")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        err = b""
        if self.proc.poll() is not None and self.proc.stderr is not None:
            err = self.proc.stderr.read()
        raise RuntimeError(f"private mosquitto did not start: {err.decode(errors='replace')}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    if not Path(MOSQUITTO).exists():
        need_service(False, "mosquitto is not installed")
    broker = PrivateBroker(tmp_path, free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
