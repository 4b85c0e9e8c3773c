"""``rollout create --shadow-inputs N --shadow-min-agreement X [--shadow-timeout S]``: the
flags become the spec's ``shadow`` (over a spec file's, key by key), and bad ones are
refused with the hub's words before any request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.hub.cli.conftest import LiveHub


@pytest.fixture
def fleet(live_hub: LiveHub, make_bundle: Any) -> list[str]:
    live_hub.upload(make_bundle(1))
    live_hub.upload(make_bundle(2))
    return live_hub.fleet(2)


def test_shadow_flags_make_the_spec_and_show_in_the_table(
    cli: Any, live_hub: LiveHub, fleet: list[str]
) -> None:
    r = cli("rollout", "create", "digits", "2", "--tag", "lab", "--shadow-inputs", "40",
            "--shadow-min-agreement", "0.85")  # fmt: skip
    assert r.code == 0, r.err
    rid = r.out.splitlines()[-1]
    spec = live_hub.api("GET", f"/rollouts/{rid}").get_json()["spec"]
    assert spec["shadow"] == {"inputs": 40, "min_agreement": 0.85, "timeout": 120.0}
    shown = cli("rollout", "show", rid)
    assert shown.code == 0 and "AGREEMENT" in shown.out and "CANDIDATE P50/P95 MS" in shown.out


def test_flags_override_the_spec_files_shadow_key_by_key(
    cli: Any, live_hub: LiveHub, fleet: list[str], tmp_path: Path
) -> None:
    f = tmp_path / "spec.json"
    shadow = {"inputs": 10, "min_agreement": 0.5, "timeout": 30}
    f.write_text(json.dumps({"model": "digits", "version": 2, "target": {"all": True},
                             "shadow": shadow}))  # fmt: skip
    r = cli("rollout", "create", "--spec", str(f), "--shadow-min-agreement", "0.95")
    assert r.code == 0, r.err
    spec = live_hub.api("GET", f"/rollouts/{r.out.splitlines()[-1]}").get_json()["spec"]
    assert spec["shadow"] == {"inputs": 10, "min_agreement": 0.95, "timeout": 30.0}


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--shadow-min-agreement", "0.9"], "need --shadow-inputs N"),
        (["--shadow-inputs", "5", "--shadow-min-agreement", "2"], "'min_agreement' must be"),
        (["--shadow-inputs", "-1"], "'inputs' must be an integer from 1"),
        (["--shadow-inputs", "5", "--shadow-timeout", "1000"], "shorter than deploy_timeout_s"),
    ],
)
def test_bad_shadow_flags_are_refused_before_any_request(
    cli: Any, live_hub: LiveHub, flags: list[str], message: str
) -> None:
    r = cli("rollout", "create", "digits", "2", "--all", *flags)
    assert r.code == 2 and message in r.err, r.err
    assert live_hub.api("GET", "/rollouts").get_json() == []
