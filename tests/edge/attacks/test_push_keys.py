"""Key compromise, end to end: ``edgekit hub push-keys`` signs keys commands with the hub's
command key and publishes them on a real Mosquitto; a real agent (paho transport) rotates
its bundle keys without being re-provisioned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edge.bundle import KEYRING_FILE, key_id, load_public_key
from edge.cli import main
from tests.edge.attacks.conftest import DEV
from tests.edge.brokers import PrivateBroker, private_broker  # noqa: F401 - fixture
from tests.waiting import wait_for


def kid(pub: Path) -> str:
    return key_id(load_public_key(pub))


def hub_db(tmp_path: Path, *devices: str, revoked: tuple[str, ...] = ()) -> Path:
    """A hub data dir whose database knows ``devices``; returns the data dir."""
    from cloud.hub.config import HubConfig
    from cloud.hub.storage import Database, Device

    data = tmp_path / "hub"
    cfg = HubConfig(data_dir=data)
    cfg.ensure_dirs()
    db = Database(cfg.database_url())
    db.migrate()
    with db.session() as s:
        for d in devices:
            s.add(Device(id=d, enrolled=True, revoked=1.0 if d in revoked else None))
        s.commit()
    return data


def command_key_file(data: Path, out: Path) -> Path:
    from cloud.hub.commands import command_public_pem
    from cloud.hub.config import HubConfig
    from cloud.hub.storage import Database

    db = Database(HubConfig(data_dir=data).database_url())
    with db.session() as s:
        out.write_text(command_public_pem(s))
    return out


@pytest.mark.integration
def test_push_keys_rotates_a_fleet_over_mqtt(
    tmp_path: Path,
    attack_kit: dict[str, Path],
    private_broker: PrivateBroker,  # noqa: F811
) -> None:
    from edge.agent import Agent, config

    data = hub_db(tmp_path, DEV, "dev-2", "gone", revoked=("gone",))
    agent_data = tmp_path / "agent"
    cfg = config.load(
        {
            "device_id": DEV,
            "data_dir": str(agent_data),
            "broker": private_broker.url,
            "trusted_key": str(attack_kit["pub_a"]),
            "command_keys": str(command_key_file(data, tmp_path / "hub-command.pub")),
            "bundle": str(attack_kit["d1"]),
            "selftest_time_budget": "0.1",
            "telemetry_interval": "3600",
        },
        environ={},
    )
    agent = Agent(cfg)
    agent.start()
    try:
        assert agent.transport.wait_subscribed(10)  # type: ignore[attr-defined]
        a, b = kid(attack_kit["pub_a"]), kid(attack_kit["pub_b"])
        argv = ["hub", "push-keys", "--data-dir", str(data), "--broker", private_broker.url]
        assert main([*argv, "--add", str(attack_kit["pub_b"]), "--device", DEV]) == 0
        keyring = agent.installer.policy.keyring
        assert keyring is not None
        wait_for(lambda: b in keyring.trusted(), 15, what="key B trusted")
        assert a in keyring.trusted()  # both during the overlap
        assert main([*argv, "--revoke", a, "--all"]) == 0  # every unrevoked device
        wait_for(lambda: a in keyring.revoked, 15, what="key A revoked")
        assert sorted(keyring.trusted()) == [b]
        saved = json.loads((agent_data / KEYRING_FILE).read_text())
        assert list(saved["revoked"]) == [a] and list(saved["added"]) == [b]
    finally:
        agent.stop()


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        (["--revoke", "not-a-key-id", "--device", DEV], "16 lower-case hex"),
        (["--device", DEV], "--add PUB.pem and/or --revoke"),
        (["--revoke", "0123456789abcdef", "--device", "nobody"], "unknown"),
        (["--revoke", "0123456789abcdef", "--device", "gone"], "revoked"),
        (["--revoke", "0123456789abcdef", "--device", DEV], "no broker known"),
        (["--revoke", "0123456789abcdef", "--device", DEV, "--ttl-hours", "48"], "at most 24"),
        (["--add", "PRIV", "--device", DEV], "private key"),
        (
            ["--revoke", "0123456789abcdef", "--all", "--broker", "mqtt://127.0.0.1:1"],
            "cannot reach the broker",
        ),
    ],
)
def test_push_keys_refusals(
    tmp_path: Path,
    attack_kit: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    error: str,
) -> None:
    data = hub_db(tmp_path, DEV, "gone", revoked=("gone",))
    args: list[Any] = [str(attack_kit["priv_a"]) if x == "PRIV" else x for x in extra]
    assert main(["hub", "push-keys", "--data-dir", str(data), *args]) == 1
    assert error in capsys.readouterr().err
