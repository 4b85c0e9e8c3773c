"""``edgekit hub ...`` end to end: serve on a free port, tokens, users, upload."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.cli import main

CLI = [sys.executable, "-m", "edge.cli"]


def last_line(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_tokens_and_users(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    d = ["--data-dir", str(tmp_path)]
    assert main(["hub", "create-token", "--role", "operator", *d]) == 0
    assert last_line(capsys).startswith("ekt_")
    assert main(["hub", "enroll-token", "--tags", "lab,eu", *d]) == 0
    assert last_line(capsys).startswith("eke_")
    assert main(["hub", "enroll-token", "--tags", "a b", *d]) == 1
    assert "invalid tag" in capsys.readouterr().err
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("long enough password\n"))
    assert main(["hub", "create-user", "ann", "--role", "admin", "--password-stdin", *d]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["hub", "create-user", "bob", "--password-stdin", *d]) == 1
    assert "at least 8" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("long enough password\n"))
    assert main(["hub", "create-user", "ann", "--password-stdin", *d]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["hub", "create-token", "--role", "admin", "--db", "mysql://x", *d]) == 1
    assert "unsupported database URL" in capsys.readouterr().err


@pytest.fixture
def served(tmp_path: Path, keys: Any) -> Iterator[tuple[str, Path]]:
    proc = subprocess.Popen(
        [
            *CLI,
            "hub",
            "serve",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path),
            "--trusted-key",
            str(keys[1]),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().split()[-1]
    assert proc.stdout.readline().startswith("port ")
    assert proc.stdout.readline().strip() == f"data dir {tmp_path.resolve()}"
    try:
        yield url, tmp_path
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow
def test_serve_and_upload(served: tuple[str, Path], make_bundle: Any, tmp_path: Path) -> None:
    url, data_dir = served
    out = subprocess.run(
        [*CLI, "hub", "create-token", "--role", "operator", "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    token = out.stdout.strip().splitlines()[-1]
    up = subprocess.run(
        [*CLI, "hub", "upload", str(make_bundle(1)), "--hub", url, "--token", token],
        capture_output=True, text=True,
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    again = subprocess.run(
        [*CLI, "hub", "upload", str(make_bundle(1)), "--hub", url, "--token", token],
        capture_output=True, text=True,
    )  # fmt: skip
    assert again.returncode == 1 and "409" in again.stderr and "Traceback" not in again.stderr
    missing = subprocess.run(
        [*CLI, "hub", "upload", str(tmp_path / "nope.ekb"), "--hub", url, "--token", token],
        capture_output=True, text=True,
    )  # fmt: skip
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    req = urllib.request.Request(
        url + "/api/v1/models", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert [m["version"] for m in json.loads(resp.read())] == [1]


def test_serve_refuses_a_busy_port(tmp_path: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        res = subprocess.run(
            [*CLI, "hub", "serve", "--port", str(port), "--data-dir", str(tmp_path)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        s.close()
    assert res.returncode == 1 and "cannot listen" in res.stderr


def test_default_data_dir_is_per_user_not_the_working_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cloud.hub.config import HubConfig

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    cfg = HubConfig()
    assert cfg.data_dir == (tmp_path / "xdg" / "edgekit" / "hub").resolve()
    assert main(["hub", "create-token", "--role", "viewer"]) == 0
    assert (tmp_path / "xdg" / "edgekit" / "hub" / "hub.db").is_file()
    assert not (tmp_path / "hub-data").exists()
