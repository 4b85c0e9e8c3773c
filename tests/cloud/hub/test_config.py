"""The captured-sample settings come from EDGEKIT_HUB_* variables (WSGI factories and
``hub serve``) and ``hub serve`` flags: a flag wins over its variable, a variable over the
default, and a bad value is refused with the variable's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.hub.cli.commands import _sample_settings
from cloud.hub.config import SAMPLE_SETTINGS, HubConfig, sample_settings_from_env
from edge.cli.main import build_parser
from edge.errors import ConfigError

ENV = {
    "EDGEKIT_HUB_SAMPLE_RATE_PER_MINUTE": "12",
    "EDGEKIT_HUB_SAMPLE_MAX_AGE_DAYS": "2.5",
    "EDGEKIT_HUB_SAMPLE_MAX_COUNT": "500",
    "EDGEKIT_HUB_SAMPLE_RETENTION_INTERVAL_S": "30",
}


def _set(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name in SAMPLE_SETTINGS:
        monkeypatch.delenv("EDGEKIT_HUB_" + name.upper(), raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)


def test_from_env_reads_every_sample_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set(monkeypatch, ENV)
    cfg = HubConfig.from_env(data_dir=tmp_path, background=False)
    assert cfg.sample_rate_per_minute == 12 and isinstance(cfg.sample_rate_per_minute, int)
    assert cfg.sample_max_age_days == 2.5
    assert cfg.sample_max_count == 500
    assert cfg.sample_retention_interval_s == 30.0


def test_unset_variables_keep_the_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {"EDGEKIT_HUB_SAMPLE_MAX_COUNT": " "})
    cfg = HubConfig.from_env(data_dir=tmp_path)
    default = HubConfig(data_dir=tmp_path)
    for name in SAMPLE_SETTINGS:
        assert getattr(cfg, name) == getattr(default, name)


@pytest.mark.parametrize(
    "name, raw, message",
    [
        ("SAMPLE_RATE_PER_MINUTE", "1.5", "EDGEKIT_HUB_SAMPLE_RATE_PER_MINUTE must be a whole"),
        ("SAMPLE_MAX_COUNT", "lots", "EDGEKIT_HUB_SAMPLE_MAX_COUNT must be a whole number"),
        ("SAMPLE_MAX_AGE_DAYS", "a week", "EDGEKIT_HUB_SAMPLE_MAX_AGE_DAYS must be a number"),
        ("SAMPLE_RETENTION_INTERVAL_S", "nan", "must be a finite number"),
        ("SAMPLE_MAX_AGE_DAYS", "inf", "must be a finite number"),
        ("SAMPLE_MAX_AGE_DAYS", "0", "sample_max_age_days must be positive"),
        ("SAMPLE_RETENTION_INTERVAL_S", "-1", "sample_retention_interval_s must be positive"),
        ("SAMPLE_RATE_PER_MINUTE", "0", "must be at least 1"),
    ],
)
def test_bad_values_are_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, raw: str, message: str
) -> None:
    _set(monkeypatch, {"EDGEKIT_HUB_" + name: raw})
    with pytest.raises(ConfigError, match=message):
        HubConfig.from_env(data_dir=tmp_path)


def test_serve_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, ENV)
    args = build_parser().parse_args(
        ["hub", "serve", "--sample-rate", "99", "--sample-retention-interval", "5"]
    )
    assert _sample_settings(args) == {
        "sample_rate_per_minute": 99,  # flag
        "sample_max_age_days": 2.5,  # environment
        "sample_max_count": 500,
        "sample_retention_interval_s": 5.0,  # flag
    }


def test_serve_without_flags_or_variables_uses_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _set(monkeypatch, {})
    args = build_parser().parse_args(["hub", "serve"])
    assert _sample_settings(args) == {}
    cfg = HubConfig(data_dir=tmp_path, **_sample_settings(args))
    assert (cfg.sample_rate_per_minute, cfg.sample_max_count) == (600, 100_000)


def test_serve_refuses_a_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, {"EDGEKIT_HUB_SAMPLE_MAX_COUNT": "ten"})
    args = build_parser().parse_args(["hub", "serve"])
    with pytest.raises(ConfigError, match="EDGEKIT_HUB_SAMPLE_MAX_COUNT"):
        _sample_settings(args)


def test_only_set_variables_are_returned() -> None:
    assert sample_settings_from_env({"EDGEKIT_HUB_SAMPLE_MAX_COUNT": "7", "OTHER": "x"}) == {
        "sample_max_count": 7
    }
