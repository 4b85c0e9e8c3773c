"""SIGTERM (systemd, docker stop) stops ``edgekit hub serve`` as Ctrl-C does: exit 0, the
workers stopped and the leader lease handed back at once, not left to lapse."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


def test_sigterm_stops_the_hub_cleanly_and_hands_the_lease_back(tmp_path: Path) -> None:
    data = tmp_path / "hub"
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "hub", "serve", "--port", "0", "--data-dir", str(data)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        lines = []
        for line in proc.stdout:  # the port line: listening, workers started
            lines.append(line)
            if line.startswith("port "):
                break
        db = sqlite3.connect(next(data.glob("*.db")))
        deadline = time.monotonic() + 30
        while not db.execute("SELECT expires FROM leases WHERE name='scheduler'").fetchall():
            assert time.monotonic() < deadline, "the hub never took the scheduler lease"
            time.sleep(0.1)
        (expires,) = db.execute("SELECT expires FROM leases WHERE name='scheduler'").fetchone()
        assert expires > time.time()  # held
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, "".join(lines) + out
    assert "stopped (SIGTERM)" in out
    (expires,) = db.execute("SELECT expires FROM leases WHERE name='scheduler'").fetchone()
    assert expires <= time.time(), "the lease was left to lapse"
