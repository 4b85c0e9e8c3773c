"""The capture policy: each reason, their order, off means nothing, strict settings, and
what a hub's config command may set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.agent import config
from edge.capture import CapturePolicy
from edge.errors import ConfigError

ON = CapturePolicy(enabled=True)
QUIET: dict[str, Any] = {"confidence": 0.99}  # nothing about this input is interesting


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        ({"confidence": 0.3}, "low_confidence"),
        ({**QUIET, "out_of_range": True}, "out_of_range"),
        ({**QUIET, "drifting": True}, "drift"),
        ({**QUIET, "shadow_disagrees": True}, "shadow_disagreement"),
        ({**QUIET, "wrong_label": True}, "wrong_label"),
        ({**QUIET, "requested": True}, "requested"),
        ({**QUIET, "draw": 0.0}, None),  # random share 0: never
        (QUIET, None),
    ],
)
def test_each_reason(facts: dict[str, Any], reason: str | None) -> None:
    assert ON.reason(**facts) == reason


def test_random_share() -> None:
    policy = CapturePolicy(enabled=True, random=0.25)
    assert policy.reason(**QUIET, draw=0.2) == "random"
    assert policy.reason(**QUIET, draw=0.3) is None


def test_reason_order_and_switches() -> None:
    everything: dict[str, Any] = {"confidence": 0.1, "out_of_range": True, "drifting": True,
                  "shadow_disagrees": True, "wrong_label": True, "draw": 0.0}  # fmt: skip
    assert ON.reason(**everything, requested=True) == "requested"
    assert ON.reason(**everything) == "wrong_label"
    off = ON.merged({"wrong_label": False, "shadow_disagreement": False, "out_of_range": False})
    assert off.reason(**everything) == "low_confidence"
    assert off.merged({"low_confidence": 0.0}).reason(**everything) == "drift"


def test_nothing_when_off() -> None:
    off = CapturePolicy(random=1.0, low_confidence=1.0)
    everything: dict[str, Any] = {"confidence": 0.0, "out_of_range": True, "drifting": True,
                  "shadow_disagrees": True, "wrong_label": True, "requested": True,
                  "draw": 0.0}  # fmt: skip
    assert off.reason(**everything) is None
    assert CapturePolicy().enabled is False


def test_parse_forms() -> None:
    assert CapturePolicy.parse("on") == ON
    assert CapturePolicy.parse(False) == CapturePolicy()
    assert CapturePolicy.parse('{"enabled": true, "random": 0.5}').random == 0.5
    p = CapturePolicy.parse({"enabled": True, "max_mb": 0.5, "next": 3})
    assert p.max_bytes == 512 * 1024 and p.next == 3
    assert p.merged({"random": 0.1}).next == 0  # a request is never inherited


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"enabld": True}, "unknown key"),
        ({"enabled": "yes"}, "capture.enabled: expected true or false"),
        ({"low_confidence": 1.5}, "between 0 and 1"),
        ({"random": -0.1}, "between 0 and 1"),
        ({"next": 2.5}, "whole number"),
        ({"upload_batch": 65}, "between 1 and 64"),
        ({"max_per_minute": 0}, "between 1 and"),
        ({"max_mb": 0}, "greater than 0"),
        ({"upload_interval": "10"}, "expected a number"),
        ({"max_mb": float("nan")}, "finite"),
        ("maybe", "expected on, off or a JSON object"),
        ([1], "expected an object"),
    ],
)
def test_bad_settings_name_the_key(value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CapturePolicy.parse(value)


def test_agent_config_key(tmp_path: Path) -> None:
    toml = tmp_path / "agent.toml"
    toml.write_text('[agent]\ndevice_id = "d1"\ndata_dir = "x"\n'
                    "[agent.capture]\nenabled = true\nlow_confidence = 0.4\n")  # fmt: skip
    cfg = config.load(config_file=toml, environ={})
    assert cfg.capture == CapturePolicy(enabled=True, low_confidence=0.4)
    env = config.load({"device_id": "d1", "data_dir": "x"}, environ={"EDGEKIT_CAPTURE": "on"})
    assert env.capture.enabled
    assert config.load({"device_id": "d1", "data_dir": "x"}, environ={}).capture == CapturePolicy()
    assert cfg.redacted()["capture"]["low_confidence"] == 0.4
    with pytest.raises(ConfigError, match="capture: expected on, off"):
        config.load({"device_id": "d1", "data_dir": "x", "capture": "sometimes"}, environ={})


def test_remote_config_merges_and_is_capped(tmp_path: Path) -> None:
    local = config.load({"device_id": "d1", "data_dir": str(tmp_path),
                         "capture": '{"max_mb": 4096, "low_confidence": 0.3}'},
                        environ={})  # fmt: skip
    on = local.replace_remote({"capture": {"enabled": True, "random": 0.1}})
    # merged into the local policy; its own (uncapped) budget stays as the device set it
    assert on.capture == CapturePolicy(enabled=True, random=0.1, max_mb=4096, low_confidence=0.3)
    assert on.replace_remote({"capture": {"next": 20}}).capture.next == 20
    for change, key in [
        ({"max_mb": 5000}, "max_mb"),
        ({"max_per_minute": 601}, "max_per_minute"),
        ({"next": 10_001}, "next"),
        ({"upload_interval": 0.5}, "upload_interval"),
    ]:
        with pytest.raises(ConfigError, match=f"capture.{key}: .* the range a remote config"):
            on.replace_remote({"capture": change})
    with pytest.raises(ConfigError, match="unknown key"):
        on.replace_remote({"capture": {"path": "/etc"}})
    assert on.replace_remote({"capture": {"enabled": False}}).capture.enabled is False
