"""A real hub in its own process (`edgekit hub serve` on a free port) for end-to-end tests."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLI = [sys.executable, "-m", "edge.cli"]


@contextmanager
def served_hub(data: Path, broker_url: str, trusted_key: Path) -> Iterator[tuple[str, str]]:
    """Serve a hub on ``data`` against ``broker_url``; yields (its URL, an operator token)."""
    proc = subprocess.Popen(
        [*CLI, "hub", "serve", "--port", "0", "--data-dir", str(data),
         "--broker", broker_url, "--trusted-key", str(trusted_key)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    url = proc.stdout.readline().split()[-1]
    try:
        token = subprocess.run(
            [*CLI, "hub", "create-token", "--role", "operator", "--data-dir", str(data)],
            capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        yield url, token
    finally:
        proc.terminate()
        proc.wait(15)
