"""Agent config for a broker cluster: several URLs from flags, file and environment, and the
device-id rule every broker accepts, checked at start with a clear error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.agent import config
from edge.agent.agent import anonymous_login, broker_login, mqtt_transport
from edge.cli.main import build_parser
from edge.contract import DEVICE_ID_MAX, check_device_id, validate_device_id
from edge.errors import ConfigError, ContractError

TWO = "mqtt://10.0.0.1:1883,mqtt://10.0.0.2:1884"


def base(tmp_path: Path, **more: Any) -> dict[str, Any]:
    return {"device_id": "cam-1", "data_dir": str(tmp_path), **more}


def test_repeated_flag_keeps_every_url_in_order(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        ["agent", "run", "--device-id", "cam-1", "--data-dir", str(tmp_path),
         "--broker", "mqtt://10.0.0.1:1883", "--broker", "mqtt://10.0.0.2:1884"]
    )  # fmt: skip
    assert args.broker == ["mqtt://10.0.0.1:1883", "mqtt://10.0.0.2:1884"]
    cfg = config.load({"broker": args.broker, "device_id": "cam-1", "data_dir": str(tmp_path)},
                      environ={})  # fmt: skip
    assert cfg.broker == TWO
    assert [(e.host, e.port) for e in cfg.brokers] == [("10.0.0.1", 1883), ("10.0.0.2", 1884)]


def test_env_and_file_take_lists(tmp_path: Path) -> None:
    env = {"EDGEKIT_BROKER": " mqtt://10.0.0.1:1883 , mqtt://10.0.0.2:1884 "}
    assert config.load(base(tmp_path), environ=env).broker == TWO
    toml = tmp_path / "agent.toml"
    toml.write_text(
        f'device_id = "cam-1"\ndata_dir = "{tmp_path}"\n'
        'broker = ["mqtt://10.0.0.1:1883", "mqtt://10.0.0.2:1884"]\n'
    )
    assert config.load(config_file=toml, environ={}).broker == TWO
    toml.write_text(f'device_id = "cam-1"\ndata_dir = "{tmp_path}"\nbroker = "{TWO}"\n')
    assert config.load(config_file=toml, environ={}).broker == TWO


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("mqtt://a:1,http://b:2", "must start with mqtt://"),
        ("mqtt://a:1,mqtts://b:2", "same scheme"),
        ("mqtt://a:1,mqtt://a:1", "listed twice"),
        ([], "at least one"),
        ("mqtt://a:bad", "malformed"),
    ],
)
def test_bad_lists_fail_at_start(tmp_path: Path, value: object, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as err:
        config.load(base(tmp_path, broker=value), environ={})
    assert str(err.value).startswith("broker")


def test_env_errors_name_the_broker(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="broker URL 'ftp://x' must start"):
        config.load(base(tmp_path), environ={"EDGEKIT_BROKER": "mqtt://a:1,ftp://x"})


def test_replace_checks_the_list_too(tmp_path: Path) -> None:
    cfg = config.load(base(tmp_path), environ={})
    assert cfg.replace(broker=TWO).broker == TWO
    with pytest.raises(ConfigError, match="same scheme"):
        cfg.replace(broker="mqtt://a:1,mqtts://b:2")


def test_login_from_any_url_of_the_list(tmp_path: Path) -> None:
    cfg = config.load(base(tmp_path, broker="mqtt://a:1,mqtt://dev:pw@b:2"), environ={})
    assert not anonymous_login(cfg, None)
    assert broker_login(cfg, {"mqtt": {"username": "enrolled", "password": "x"}}) == (None, None)
    plain = config.load(base(tmp_path, broker=TWO), environ={})
    assert anonymous_login(plain, None)
    enrolled = {"mqtt": {"username": "enrolled", "password": "x"}}
    assert broker_login(plain, enrolled) == ("enrolled", "x")


def test_the_transport_gets_every_broker(tmp_path: Path) -> None:
    cfg = config.load(base(tmp_path, broker=TWO), environ={})
    transport = mqtt_transport(cfg)
    eps = transport.failover.endpoints  # type: ignore[attr-defined]
    assert [e.address for e in eps] == ["10.0.0.1:1883", "10.0.0.2:1884"]
    assert transport.broker == "10.0.0.1:1883"  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------- device ids


@pytest.mark.parametrize("good", ["cam-1", "demo-01", "sim-00001", "A_b-9", "x" * DEVICE_ID_MAX])
def test_device_ids_every_broker_accepts(good: str) -> None:
    assert check_device_id(good) == good


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("cam.1", "'.' breaks topics on NATS"),
        ("x" * (DEVICE_ID_MAX + 1), f"it has {DEVICE_ID_MAX + 1} characters"),
        ("-cam", "starting with a letter or digit"),
        ("_cam", "starting with a letter or digit"),
        ("", "1-64 letters"),
        ("cam/1", "1-64 letters"),
        ("cam+1", "1-64 letters"),
        ("cäm", "1-64 letters"),
        (None, "1-64 letters"),
    ],
)
def test_other_ids_are_refused_with_the_rule(bad: object, words: str) -> None:
    with pytest.raises(ContractError, match=words):
        check_device_id(bad)


def test_agent_start_refuses_a_dotted_id(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"device_id: invalid device id 'cam\.1'.*NATS"):
        config.load(base(tmp_path, device_id="cam.1"), environ={})


def test_reports_of_older_dotted_devices_still_parse() -> None:
    assert validate_device_id("cam.1") == "cam.1"  # topics of devices enrolled before the rule
