"""Agent configuration: precedence, validation and the messages bad values get."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.agent import config
from edge.errors import ConfigError


def base(tmp_path: Path) -> dict[str, object]:
    return {"device_id": "cam-1", "data_dir": str(tmp_path)}


def test_defaults_and_cli(tmp_path: Path) -> None:
    cfg = config.load(base(tmp_path), environ={})
    assert cfg.device_id == "cam-1"
    assert cfg.data_dir == tmp_path
    assert cfg.broker == "mqtt://127.0.0.1:1883"
    assert cfg.telemetry_interval == 10.0
    assert cfg.models_dir == tmp_path / "models"


def test_precedence_file_env_cli(tmp_path: Path) -> None:
    toml = tmp_path / "agent.toml"
    toml.write_text(
        f'[agent]\ndevice_id = "from-file"\ndata_dir = "{tmp_path}"\ntelemetry_interval = 3\n'
        "keep-versions = 5\nhttp_port = 8080\n"
    )
    env = {"EDGEKIT_TELEMETRY_INTERVAL": "2.5", "EDGEKIT_HTTP_PORT": "9090"}
    cfg = config.load({"http_port": "7070"}, config_file=toml, environ=env)
    assert cfg.device_id == "from-file"
    assert cfg.keep_versions == 5  # file (dashes accepted)
    assert cfg.telemetry_interval == 2.5  # env beats file
    assert cfg.http_port == 7070  # explicit flag beats env


def test_config_file_from_env(tmp_path: Path) -> None:
    toml = tmp_path / "a.toml"
    toml.write_text(f'device_id = "top-level"\ndata_dir = "{tmp_path}"\n')
    cfg = config.load({}, environ={"EDGEKIT_CONFIG": str(toml)})
    assert cfg.device_id == "top-level"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"device_id": "a/b"}, "device_id"),
        ({"broker": "http://x"}, "broker"),
        ({"broker": "mqtt://host:99999"}, "broker"),
        ({"mqtt_version": "4"}, "mqtt_version"),
        ({"telemetry_interval": "0"}, "telemetry_interval"),
        ({"telemetry_interval": "fast"}, "telemetry_interval"),
        ({"telemetry_interval": "nan"}, "telemetry_interval"),
        ({"keep_versions": "0"}, "keep_versions"),
        ({"keep_versions": "2.5"}, "keep_versions"),
        ({"pin_runtime": "tensorrt"}, "pin_runtime"),
        ({"pin_precision": "fp16"}, "pin_precision"),
        ({"http_port": "70000"}, "http_port"),
        ({"fallback_error_rate": "1.5"}, "fallback_error_rate"),
        ({"trusted_key": "/nonexistent/key.pub"}, "trusted_key"),
        ({"hub": "ftp://hub"}, "hub"),
        ({"enroll_token": "t"}, "enroll_token"),
        ({"cert_file": __file__}, "cert_file and key_file"),
        ({"allow_unsigned": "maybe"}, "allow_unsigned"),
        ({"probation_min_latency_increase_ms": "-1"}, "probation_min_latency_increase_ms"),
        ({"probation_seconds": "-1"}, "probation_seconds"),
        ({"infer_response_qos": "2"}, "infer_response_qos"),
        ({"infer_response_qos": "one"}, "infer_response_qos"),
    ],
)
def test_bad_values_name_the_key(tmp_path: Path, changes: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config.load({**base(tmp_path), **changes}, environ={})


def test_missing_required(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="device_id: required"):
        config.load({"data_dir": str(tmp_path)}, environ={})


def test_bad_env_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="EDGEKIT_KEEPALIVE"):
        config.load(base(tmp_path), environ={"EDGEKIT_KEEPALIVE": "soon"})


def test_unrelated_env_ignored(tmp_path: Path) -> None:
    cfg = config.load(base(tmp_path), environ={"EDGEKIT_TEST_PAUSE_AT": "x", "EDGEKIT_FOO": "1"})
    assert cfg.device_id == "cam-1"


def test_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("device_id = \n")
    with pytest.raises(ConfigError, match=r"bad\.toml"):
        config.load(base(tmp_path), config_file=bad, environ={})
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[agent]\ndevise_id = "x"\n')
    with pytest.raises(ConfigError, match="unknown key 'devise_id'"):
        config.load(base(tmp_path), config_file=unknown, environ={})
    with pytest.raises(ConfigError, match="does not exist"):
        config.load(base(tmp_path), config_file=tmp_path / "none.toml", environ={})


def test_wrong_toml_type(tmp_path: Path) -> None:
    toml = tmp_path / "t.toml"
    toml.write_text("keepalive = true\n")
    with pytest.raises(ConfigError, match="keepalive"):
        config.load(base(tmp_path), config_file=toml, environ={})


def test_bools_from_env(tmp_path: Path) -> None:
    cfg = config.load(base(tmp_path), environ={"EDGEKIT_ALLOW_UNSIGNED": "yes"})
    assert cfg.allow_unsigned is True


def test_replace_and_redacted(tmp_path: Path) -> None:
    cfg = config.load({**base(tmp_path), "password": "s3cret"}, environ={})
    changed = cfg.replace(probation_seconds="5")
    assert changed.probation_seconds == 5.0 and cfg.probation_seconds == 30.0
    with pytest.raises(ConfigError, match="unknown config key"):
        cfg.replace(nope=1)
    with pytest.raises(ConfigError, match="probation_max_error_rate"):
        cfg.replace(probation_max_error_rate=2)
    assert cfg.redacted()["password"] == "***"
    assert cfg.probation_min_latency_increase_ms == 10.0
    relaxed = cfg.replace(probation_min_latency_increase_ms="25")
    assert relaxed.probation_min_latency_increase_ms == 25.0
    assert "probation_min_latency_increase_ms" in config.RUNTIME_KEYS
    assert cfg.redacted()["data_dir"] == str(tmp_path)


def test_input_guard_keys(tmp_path: Path) -> None:
    cfg = config.load(base(tmp_path), environ={})
    assert (cfg.input_guard, cfg.input_guard_margin) == ("warn", 0.25)  # documented defaults
    env = {"EDGEKIT_INPUT_GUARD": "refuse", "EDGEKIT_INPUT_GUARD_MARGIN": "0.5"}
    cfg = config.load(base(tmp_path), environ=env)
    assert (cfg.input_guard, cfg.input_guard_margin) == ("refuse", 0.5)
    for changes, message in (
        ({"input_guard": "block"}, "input_guard: expected one of warn, refuse, off"),
        ({"input_guard_margin": "-0.1"}, "input_guard_margin: must not be negative"),
        ({"input_guard_margin": "wide"}, "input_guard_margin: expected a number"),
    ):
        with pytest.raises(ConfigError, match=message):
            config.load({**base(tmp_path), **changes}, environ={})
    assert cfg.replace_remote({"input_guard": "off"}).input_guard == "off"
    with pytest.raises(ConfigError, match=r"input_guard_margin: 50\.0 is outside"):
        cfg.replace_remote({"input_guard_margin": 50})
