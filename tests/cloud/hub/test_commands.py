"""The hub signs every command: one Ed25519 key per database (shared by every hub process),
handed to devices at enrollment, and commands a real agent-side CommandGuard accepts."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from cloud.hub import commands
from cloud.hub.config import HubConfig
from cloud.hub.storage import Database
from edge.agent import CommandGuard, CommandRefused, trusted_keys
from edge.agent.commands import MAX_TTL_S
from edge.contract import Command, encode_json
from tests.cloud.hub import helpers
from tests.cloud.hub.http.test_api import feed, upload

PRINT_KEY = (
    "import sys; from cloud.hub.storage import Database; from cloud.hub import commands\n"
    "db = Database(sys.argv[1])\n"
    "with db.session() as s: print(commands.command_public_pem(s), end='')\n"
)


def test_the_command_key_is_made_once_and_shared_by_every_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    one, two = Database(url), Database(url)
    one.migrate()
    try:
        with one.session() as s:
            pem = commands.command_public_pem(s)
        with two.session() as s:
            assert commands.command_public_pem(s) == pem
        other = subprocess.run(
            [sys.executable, "-c", PRINT_KEY, url], capture_output=True, text=True, timeout=60
        )
        assert other.returncode == 0, other.stderr
        assert other.stdout == pem and pem.startswith("-----BEGIN PUBLIC KEY-----")
    finally:
        one.dispose()
        two.dispose()


def guard_for(device: str, pem: str, tmp: Path) -> CommandGuard:
    return CommandGuard(device, trusted_keys([], pem), tmp / device)


def test_a_signed_command_verifies_and_every_field_is_covered(app: Any, tmp_path: Path) -> None:
    db = app.extensions["edgekit_hub"].db
    now = time.time()
    cmd = Command(id="c1", kind="deploy", ts=now, expires=now + 60, device="cam-1",
                  nonce=commands.new_nonce(), name="digits", version=2, url="http://hub/b",
                  sha256="ab" * 32, size=10, rollout="r1")  # fmt: skip
    with db.session() as s:
        signed = commands.sign(s, cmd)
        pem = commands.command_public_pem(s)
    assert (
        signed.key_id and signed.sig and dataclasses.replace(signed, key_id=None, sig=None) == cmd
    )
    assert guard_for("cam-1", pem, tmp_path).check(encode_json(signed.to_dict())) == signed
    for change in ({"version": 1}, {"url": "http://evil/b"}, {"device": "cam-2"},
                   {"expires": now + 3600}, {"nonce": commands.new_nonce()}):  # fmt: skip
        forged = dataclasses.replace(signed, **change)
        with pytest.raises(CommandRefused) as err:
            guard_for(forged.device or "cam-1", pem, tmp_path / "f").check(
                encode_json(forged.to_dict())
            )
        assert err.value.reason == "bad_signature"


def test_rollout_commands_are_signed_for_their_device(
    app: Any, client: Any, tokens: Any, make_bundle: Any, tmp_path: Path
) -> None:
    hub = app.extensions["edgekit_hub"]
    sent: list[tuple[str, Command]] = []
    hub.service.publisher = lambda device, cmd: sent.append((device, cmd))
    h = tokens["operator"]
    upload(client, h, make_bundle(1))
    upload(client, h, make_bundle(2))
    feed(app, *[helpers.status(f"cam-{i}", version=1) for i in range(3)])
    body = {"model": "digits", "version": 2, "target": {"all": True}}
    resp = client.post("/api/v1/rollouts", json=body, headers=h)
    assert resp.status_code == 201, resp.get_json()
    assert client.post(f"/api/v1/rollouts/{resp.get_json()['id']}/rollback", headers=h)
    with hub.db.session() as s:
        pem = commands.command_public_pem(s)
    config: HubConfig = hub.config
    kinds = sorted(cmd.kind for _, cmd in sent)
    assert kinds == ["deploy"] * 3 + ["rollback"] * 3
    assert len({cmd.nonce for _, cmd in sent}) == len(sent)
    for device, cmd in sent:
        assert cmd.device == device and cmd.expires == pytest.approx(cmd.ts + config.command_ttl_s)
        # each verifies on its own device (the guard remembers the nonce per data dir)
        assert guard_for(device, pem, tmp_path / cmd.kind).check(encode_json(cmd.to_dict()))
        with pytest.raises(CommandRefused) as err:  # and nowhere else
            guard_for("cam-9", pem, tmp_path / "other").check(encode_json(cmd.to_dict()))
        assert err.value.reason == "wrong_device"


def test_enrollment_hands_out_the_command_key(app: Any, client: Any) -> None:
    from cloud.hub.http.auth import create_enrollment_token

    db = app.extensions["edgekit_hub"].db
    with db.session() as s:
        token = create_enrollment_token(s, [])
    resp = client.post("/api/v1/enroll", json={"token": token, "device": "cam-7"})
    assert resp.status_code == 200, resp.get_json()
    with db.session() as s:
        assert resp.get_json()["command_key"] == commands.command_public_pem(s)


def test_the_hub_never_signs_a_command_agents_would_refuse_as_too_long(app: Any) -> None:
    now = time.time()
    cmd = Command(id="c", kind="ping", ts=now, expires=now + commands.MAX_TTL_S + 1,
                  device="cam-1", nonce=commands.new_nonce())  # fmt: skip
    with app.extensions["edgekit_hub"].db.session() as s, pytest.raises(ValueError, match="longer"):
        commands.sign(s, cmd)
    assert commands.MAX_TTL_S == MAX_TTL_S  # the agent's bound


def test_the_cli_prints_the_command_key_agents_can_trust(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from edge.cli import main

    d = ["--data-dir", str(tmp_path / "hub")]
    assert main(["hub", "command-key", *d]) == 0
    pem = capsys.readouterr().out
    out = tmp_path / "hub-command.pub"
    assert main(["hub", "command-key", "--out", str(out), *d]) == 0
    assert out.read_text() == pem  # created once, the same every time
    [key] = trusted_keys([out]).values()
    url = f"sqlite:///{(tmp_path / 'hub' / 'hub.db').resolve()}"
    db = Database(url)
    try:
        with db.session() as s:
            now = time.time()
            cmd = commands.sign(s, Command(id="c", kind="ping", ts=now, expires=now + 60,
                                           device="cam-1", nonce=commands.new_nonce()))  # fmt: skip
    finally:
        db.dispose()
    guard = CommandGuard("cam-1", trusted_keys([out]), tmp_path / "agent")
    assert guard.check(encode_json(cmd.to_dict())).id == "c" and key is not None
    assert main(["hub", "command-key", "--out", str(tmp_path / "no" / "such" / "dir"), *d]) == 1
    assert "cannot write" in capsys.readouterr().err
