"""Commands that cannot be forged or replayed: the agent's CommandGuard, and a real agent on
the in-memory broker refusing every bad command with an event naming the reason, doing
nothing else."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge import contract as c
from edge.agent import Agent, config
from edge.agent.commands import (
    CLOCK_SKEW_S,
    MAX_TTL_S,
    NONCES_FILE,
    CommandGuard,
    CommandRefused,
    trusted_keys,
)
from edge.agent.enrollment import save_credentials
from edge.agent.remote_config import REMOTE_LIMITS, RUNTIME_KEYS
from edge.bundle import key_id
from edge.errors import ConfigError
from edge.messaging import MemoryBroker, MemoryTransport
from tests.commands import HUB_KEY, OTHER_KEY, command, hub_public_pem, sign_payload, write_hub_key
from tests.edge.agent_helpers import FileServer
from tests.waiting import wait_for

DEV = "cam-1"
SHA = "ab" * 32


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode()


HUB_ID = key_id(HUB_KEY.public_key())
NAN = (b'{"schema": "edgekit.cmd/1", "id": "x", "kind": "config", "ts": 1, "expires": 2, '
       b'"config": {"a": NaN}, "sig": "AA==", "key_id": "%s"}' % HUB_ID.encode())  # fmt: skip


def deploy(device: str | None = DEV, **fields: Any) -> dict[str, Any]:
    base = {"name": "digits", "version": 2, "url": "http://hub/b", "sha256": SHA, "size": 100,
            "rollout": "r1"}  # fmt: skip
    return command("deploy", device, **{**base, **fields})


def resigned_claiming_hub_key() -> dict[str, Any]:
    """Signed by another key, but naming the hub's key id."""
    return sign_payload(deploy(key=None), OTHER_KEY) | {"key_id": HUB_ID}


@pytest.fixture
def guard(tmp_path: Path) -> CommandGuard:
    return CommandGuard(DEV, trusted_keys([write_hub_key(tmp_path / "keys")]), tmp_path / "data")


def refusal(guard: CommandGuard, payload: bytes | dict[str, Any]) -> str:
    raw = payload if isinstance(payload, bytes) else encode(payload)
    with pytest.raises(CommandRefused) as err:
        guard.check(raw)
    return err.value.reason


# ----------------------------------------------------------------------------- the guard


def test_a_signed_command_for_this_device_runs_once(guard: CommandGuard) -> None:
    cmd = deploy()
    assert guard.check(encode(cmd)).id == cmd["id"]
    assert refusal(guard, cmd) == "replayed"


def test_a_replay_is_refused_after_a_restart(tmp_path: Path, guard: CommandGuard) -> None:
    cmd = command("ping", DEV)
    guard.check(encode(cmd))
    again = CommandGuard(DEV, guard.keys, tmp_path / "data")  # a new process, same data dir
    assert refusal(again, cmd) == "replayed"
    assert again.check(encode(command("ping", DEV))).kind == "ping"


def tampered(field: str, value: Any) -> dict[str, Any]:
    cmd = deploy()
    cmd[field] = value
    return cmd


# payloads are made when the test runs (lambdas): an expiry computed at collection time
# would drift towards "now" while a long session runs
REFUSALS: list[tuple[str, Callable[[], dict[str, Any] | bytes], str]] = [
    ("unsigned", lambda: deploy(key=None), "unsigned"),
    ("wrong key", lambda: deploy(key=OTHER_KEY), "unknown_key"),
    ("key id swapped", resigned_claiming_hub_key, "bad_signature"),
    ("another command's signature",
     lambda: deploy() | {"sig": command("ping", DEV)["sig"]}, "bad_signature"),
    ("signature not base64", lambda: deploy() | {"sig": "***"}, "bad_signature"),
    ("signature cut short",
     lambda: deploy() | {"sig": base64.b64encode(b"x" * 10).decode()}, "bad_signature"),
    ("wrong device", lambda: deploy("cam-2"), "wrong_device"),
    ("no device", lambda: deploy(None), "wrong_device"),
    ("expired", lambda: deploy(ttl=-1.0), "expired"),
    ("too far ahead", lambda: deploy(ttl=MAX_TTL_S + CLOCK_SKEW_S + 60), "expires_too_late"),
    ("no nonce", lambda: deploy(nonce=None), "no_nonce"),
    ("not JSON", lambda: b"{deploy", "malformed"),
    ("deploy without size", lambda: deploy(size=None), "malformed"),
    ("NaN inside a signed command", lambda: NAN, "malformed"),
    ("nested 100000 deep", lambda: b"[" * 100_000 + b"]" * 100_000, "malformed"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "make", "reason"), REFUSALS, ids=[name for name, _, _ in REFUSALS]
)
def test_refusals_name_the_reason(
    tmp_path: Path,
    guard: CommandGuard,
    name: str,
    make: Callable[[], dict[str, Any] | bytes],
    reason: str,
) -> None:
    assert refusal(guard, make()) == reason
    assert not (tmp_path / "data" / NONCES_FILE).exists()  # refused: nothing recorded


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", "cmd-other"), ("kind", "rollback"), ("ts", 1.0), ("expires", 4e9),
     ("device", "cam-2"), ("nonce", "N" * 24), ("name", "evil"), ("version", 99),
     ("url", "http://evil/b"), ("sha256", "cd" * 32), ("size", 99_999), ("rollout", "r9"),
     ("config", {"telemetry_interval": 5}), ("extra", "added after signing")],
)  # fmt: skip
def test_any_field_changed_after_signing_is_refused(
    guard: CommandGuard, field: str, value: Any
) -> None:
    assert refusal(guard, tampered(field, value)) == "bad_signature"


def test_without_any_command_key_every_command_is_refused(tmp_path: Path) -> None:
    bare = CommandGuard(DEV, {}, tmp_path)
    assert refusal(bare, command("ping", DEV)) == "no_command_key"
    assert refusal(bare, command("ping", DEV, key=None)) == "no_command_key"


def test_allow_unsigned_waives_only_the_signature(tmp_path: Path) -> None:
    dev = CommandGuard(DEV, {}, tmp_path, allow_unsigned=True)
    cmd = command("ping", DEV, key=None)
    assert dev.check(encode(cmd)).kind == "ping"
    assert refusal(dev, cmd) == "replayed"
    assert refusal(dev, command("ping", "cam-2", key=None)) == "wrong_device"
    assert refusal(dev, command("ping", DEV, key=None, ttl=-1)) == "expired"
    assert refusal(dev, command("ping", DEV, key=OTHER_KEY)) == "no_command_key"


def test_the_enrolled_key_is_trusted(tmp_path: Path) -> None:
    keys = trusted_keys([], hub_public_pem().decode())
    assert CommandGuard(DEV, keys, tmp_path).check(encode(command("ping", DEV))).kind == "ping"


def test_nonces_are_pruned_once_expired(tmp_path: Path) -> None:
    now = [1_000_000.0]
    g = CommandGuard(DEV, trusted_keys([write_hub_key(tmp_path)]), tmp_path, clock=lambda: now[0])
    first = command("ping", DEV, ts=now[0], expires=now[0] + 10)
    g.check(encode(first))
    now[0] += 10 + CLOCK_SKEW_S + 1
    g.check(encode(command("ping", DEV, ts=now[0], expires=now[0] + 10)))
    stored = json.loads((tmp_path / NONCES_FILE).read_text())["nonces"]
    assert first["nonce"] not in stored and len(stored) == 1
    # pruned, but still refused: it has expired
    assert refusal(g, first) == "expired"


def test_a_nonce_that_cannot_be_recorded_refuses_the_command(
    tmp_path: Path, guard: CommandGuard
) -> None:
    (tmp_path / "data" / NONCES_FILE).mkdir(parents=True)  # a directory: replace() fails
    assert refusal(guard, command("ping", DEV)) == "nonce_store"


def test_a_memory_only_store_still_refuses_replays(tmp_path: Path) -> None:
    sim = CommandGuard(DEV, trusted_keys([write_hub_key(tmp_path)]), None)
    ping = command("ping", DEV)
    sim.check(encode(ping))
    assert refusal(sim, ping) == "replayed"
    assert not (tmp_path / NONCES_FILE).exists()


@pytest.mark.parametrize("content", [b"{broken", b'{"nonces": {"a": "soon"}}', b"[]"])
def test_a_damaged_nonce_store_stops_the_start(tmp_path: Path, content: bytes) -> None:
    (tmp_path / NONCES_FILE).write_bytes(content)
    with pytest.raises(ConfigError, match=NONCES_FILE):
        CommandGuard(DEV, {}, tmp_path)


def test_untrustworthy_key_files_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    with pytest.raises(ConfigError, match="command_keys"):
        trusted_keys([bad])
    with pytest.raises(ConfigError, match="command_key"):
        trusted_keys([], "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


# ----------------------------------------------------------------------------- config caps


def test_every_numeric_runtime_key_is_capped_for_remote_config() -> None:
    names = {"pin_runtime", "pin_precision", "input_guard"}  # checked against their lists
    names.add("capture")  # an object: its keys against CAPTURE_LIMITS (tests/edge/capture)
    assert {k for k, v in REMOTE_LIMITS.items() if v is None} == names
    assert config.RUNTIME_KEYS == RUNTIME_KEYS == set(REMOTE_LIMITS)


@pytest.mark.parametrize("key", sorted(k for k, v in REMOTE_LIMITS.items() if v))
def test_remote_config_outside_the_caps_is_refused(tmp_path: Path, key: str) -> None:
    cfg = config.load({"device_id": DEV, "data_dir": str(tmp_path)}, environ={})
    limits = REMOTE_LIMITS[key]
    assert limits is not None
    lo, hi = limits
    for value in (lo, hi):
        assert getattr(cfg.replace_remote({key: value}), key) == value
    for value in (lo - 1e-3 if lo else -1, hi * 2 + 1):
        with pytest.raises(ConfigError, match=key):
            cfg.replace_remote({key: value})


def test_command_keys_config(tmp_path: Path) -> None:
    a, b = write_hub_key(tmp_path / "a"), write_hub_key(tmp_path / "b", OTHER_KEY)
    cfg = config.load({"device_id": DEV, "data_dir": str(tmp_path), "command_keys": f"{a},{b}"},
                      environ={})  # fmt: skip
    assert cfg.command_keys == (a, b) and cfg.redacted()["command_keys"] == [str(a), str(b)]
    assert config.load({"device_id": DEV, "data_dir": str(tmp_path)},
                       environ={"EDGEKIT_COMMAND_KEYS": str(a)}).command_keys == (a,)  # fmt: skip
    toml = tmp_path / "agent.toml"
    toml.write_text(f'device_id = "{DEV}"\ndata_dir = "{tmp_path}"\ncommand_keys = ["{a}"]\n')
    assert config.load(config_file=toml, environ={}).command_keys == (a,)
    with pytest.raises(ConfigError, match="command_keys"):
        config.load({"device_id": DEV, "data_dir": str(tmp_path),
                     "command_keys": str(tmp_path / "missing.pub")}, environ={})  # fmt: skip
    with pytest.raises(ConfigError, match="cannot be changed remotely"):
        config.load({"device_id": DEV, "data_dir": str(tmp_path)}, environ={}).replace_remote(
            {"command_keys": str(a)}
        )


# ----------------------------------------------------------------------------- a real agent


class Bench:
    """An agent without a model on a MemoryBroker, trusting the hub test key."""

    def __init__(self, tmp: Path, device: str = DEV, **settings: Any) -> None:
        self.tmp, self.device = tmp, device
        self.broker = MemoryBroker()
        self.client = MemoryTransport(self.broker, "hub")
        self.client.connect()
        self.settings = {"device_id": device, "data_dir": str(tmp / device),
                         "telemetry_interval": "3600",
                         "command_keys": str(write_hub_key(tmp / "keys")), **settings}  # fmt: skip
        self.agent: Agent | None = None

    def start(self) -> Agent:
        cfg = config.load(self.settings, environ={})
        self.agent = Agent(cfg, MemoryTransport(self.broker, self.device))
        self.agent.start()
        return self.agent

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            self.agent = None

    def send(self, payload: dict[str, Any] | bytes, device: str | None = None) -> None:
        raw = payload if isinstance(payload, bytes) else encode(payload)
        self.client.publish(c.topic(device or self.device, c.CMD), raw, qos=1)

    def events(self) -> list[dict[str, Any]]:
        topic = c.topic(self.device, c.EVENTS)
        return [json.loads(m.payload) for m in self.broker.messages(topic)]

    def answer(self, cid: str) -> list[dict[str, Any]]:
        return wait_for(lambda: [e for e in self.events() if e["command"] == cid], 10)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    b = Bench(tmp_path)
    yield b
    b.stop()


def test_a_signed_ping_is_answered(bench: Bench) -> None:
    bench.start()
    ping = command("ping", DEV)
    bench.send(ping)
    assert [e["message"] for e in bench.answer(ping["id"])] == ["pong"]


def test_each_refusal_is_one_event_and_nothing_else(tmp_path: Path, bench: Bench) -> None:
    files = FileServer()
    bundle = tmp_path / "b.ekb"
    bundle.write_bytes(b"x" * 100)
    url = files.add(bundle)
    agent = bench.start()
    try:
        cases = {
            "unsigned": deploy(url=url, key=None),
            "unknown_key": deploy(url=url, key=OTHER_KEY),
            "bad_signature": tampered("url", url),
            "wrong_device": deploy("cam-2", url=url),
            "expired": deploy(url=url, ttl=-5),
            "expires_too_late": deploy(url=url, ttl=2 * MAX_TTL_S),
            "no_nonce": deploy(url=url, nonce=None),
        }
        for reason, payload in cases.items():
            bench.send(payload)
            [event] = bench.answer(payload["id"])
            assert event["kind"] == "error" and event["step"] is None
            assert event["detail"]["reason"] == reason, event
            assert event["message"].startswith("command refused: ")
        bench.send(b"\xff not json")
        wait_for(lambda: any(e["detail"].get("reason") == "malformed" for e in bench.events()))
        ping = command("ping", DEV)  # the agent still answers good commands, in order
        bench.send(ping)
        bench.answer(ping["id"])
        assert files.requests == []  # no refused deploy fetched anything
        assert agent.server.current is None and agent.store.state.install is None
        assert len(bench.events()) == len(cases) + 2
    finally:
        files.close()


def test_a_command_for_a_replayed_on_b_is_refused(tmp_path: Path) -> None:
    a, b = Bench(tmp_path, "cam-a"), Bench(tmp_path, "cam-b")
    b.broker = a.broker  # one broker, two devices
    b.client = a.client
    a.start()
    b.start()
    try:
        ping = command("ping", "cam-a")
        a.send(ping)
        assert a.answer(ping["id"])[0]["message"] == "pong"
        b.send(ping)  # captured on A's topic, published on B's
        [event] = b.answer(ping["id"])
        assert event["detail"]["reason"] == "wrong_device"
    finally:
        a.stop()
        b.stop()


def test_a_replay_after_an_agent_restart_is_refused(bench: Bench) -> None:
    bench.start()
    ping = command("ping", DEV)
    bench.send(ping)
    assert bench.answer(ping["id"])[0]["message"] == "pong"
    bench.stop()
    bench.start()
    bench.send(ping)
    wait_for(lambda: len(bench.answer(ping["id"])) == 2, 10)
    assert bench.answer(ping["id"])[1]["detail"]["reason"] == "replayed"


def test_the_command_key_from_enrollment_is_trusted(tmp_path: Path) -> None:
    bench = Bench(tmp_path, command_keys="")
    save_credentials(tmp_path / DEV, {"token": "ekd_x", "command_key": hub_public_pem().decode()})
    bench.start()
    try:
        ping = command("ping", DEV, key=HUB_KEY)
        bench.send(ping)
        assert bench.answer(ping["id"])[0]["message"] == "pong"
    finally:
        bench.stop()


def test_an_agent_without_a_key_refuses_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bench = Bench(tmp_path, command_keys="")
    with caplog.at_level(logging.WARNING, "edgekit.agent"):
        bench.start()
    try:
        assert "every command is refused" in caplog.text
        ping = command("ping", DEV)
        bench.send(ping)
        assert bench.answer(ping["id"])[0]["detail"]["reason"] == "no_command_key"
    finally:
        bench.stop()


def test_allow_unsigned_commands_warns_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bench = Bench(tmp_path, command_keys="", allow_unsigned_commands="true")
    with caplog.at_level(logging.WARNING, "edgekit.agent"):
        bench.start()
    try:
        assert "allow_unsigned_commands is on" in caplog.text
        ping = command("ping", DEV, key=None)
        bench.send(ping)
        assert bench.answer(ping["id"])[0]["message"] == "pong"
    finally:
        bench.stop()


def test_remote_config_out_of_range_is_refused_with_an_event(bench: Bench) -> None:
    agent = bench.start()
    flood = command("config", DEV, config={"telemetry_interval": 0.001})
    bench.send(flood)
    [event] = bench.answer(flood["id"])
    assert event["kind"] == "error" and "telemetry_interval" in event["message"]
    assert "outside 1..86400" in event["detail"]["reason"]
    assert agent.cfg.telemetry_interval == 3600
    ok = command("config", DEV, config={"telemetry_interval": 5})
    bench.send(ok)
    assert bench.answer(ok["id"])[0]["message"] == "config applied"
    assert agent.cfg.telemetry_interval == 5
