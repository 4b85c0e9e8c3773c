"""``rollout show ID`` prints the champion check the rollout was created with: the
decision, who forced it, both versions' accuracy with intervals and the sample count."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.hub.cli import rollout_cmd
from cloud.hub.cli.rollout_cmd import champion_fields
from tests.bundles import make_bundle as make_onnx_bundle
from tests.cloud.hub.cli.conftest import LiveHub


def _bundle(tmp: Path, key: Path, version: int, accuracy: float) -> Path:
    return make_onnx_bundle(
        tmp / f"digits-{version}.ekb", key, version=version, seed=version,
        golden_x=np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 1)).astype(np.float32),
        metrics={"accuracy": accuracy}, lineage={"metrics": {"test_accuracy": accuracy}},
    )  # fmt: skip


def test_forced_worse_version_shows_the_check_and_who_forced_it(
    cli: Any, live_hub: LiveHub, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    live_hub.upload(_bundle(tmp_path, keys[0], 1, 0.95))
    live_hub.upload(_bundle(tmp_path, keys[0], 2, 0.11))
    live_hub.fleet(2)
    refused = cli("rollout", "create", "digits", "2", "--tag", "lab")
    assert refused.code != 0 and "champion" in refused.err, refused.err
    made = cli("rollout", "create", "digits", "2", "--tag", "lab", "--force")
    assert made.code == 0, made.err
    rid = made.out.splitlines()[-1]
    shown = cli("rollout", "show", rid)
    assert shown.code == 0, shown.err
    lines = _fields(shown.out)
    assert lines["champion check"] == "worse, FORCED by operator"
    assert lines["against"] == "digits v1 (champion)"
    assert "test accuracy 11.0% against the champion's 95.0%" in lines["reason"]
    assert lines["field samples"] == "0 (decided on the bundles' test accuracy)"
    assert lines["test accuracy"] == "candidate 11.0 %, champion 95.0 %"


def test_an_unforced_check_is_shown_without_forced(
    cli: Any, live_hub: LiveHub, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    live_hub.upload(_bundle(tmp_path, keys[0], 1, 0.80))
    live_hub.upload(_bundle(tmp_path, keys[0], 2, 0.97))
    live_hub.fleet(2)
    made = cli("rollout", "create", "digits", "2", "--all")
    assert made.code == 0, made.err
    out = cli("rollout", "show", made.out.splitlines()[-1]).out
    assert _fields(out)["champion check"] == "better"
    assert "FORCED" not in out


def test_a_rollout_without_a_check_prints_no_block(capsys: pytest.CaptureFixture[str]) -> None:
    """A rollout whose comparison is null (no registered version to compare with) prints
    as before."""
    r = {"id": "r1", "model": "digits", "version": 2, "state": "draft", "waiting_for": None,
         "target_size": 0, "committed": 0, "failed": 0, "created": 0.0, "updated": 0.0,
         "spec": {}, "waves": [], "deployments": [], "champion": None}  # fmt: skip
    rollout_cmd._print_rollout(r, as_json=False)
    out = capsys.readouterr().out
    assert _fields(out)["rollout"] == "r1"
    assert "champion check" not in out


def _fields(out: str) -> dict[str, str]:
    return {ln.split(":", 1)[0].strip(): ln.split(":", 1)[1].strip()
            for ln in out.splitlines() if ":" in ln}  # fmt: skip


FIELD_CHECK = {
    "decision": "worse",
    "reason": "clearly worse: on 240 labeled field samples the candidate scores 12.9% ...",
    "candidate": {"name": "digits", "version": 3, "test_accuracy": 0.112},
    "champion": {"name": "digits", "version": 2, "test_accuracy": 0.996},
    "field": {
        "n": 240, "skipped": 2, "by_device": {"demo-05": 120, "demo-06": 120},
        "candidate": {"correct": 31, "n": 240, "value": 0.129, "low": 0.093, "high": 0.177},
        "champion": {"correct": 230, "n": 240, "value": 0.958, "low": 0.925, "high": 0.977},
        "agreement": {"correct": 29, "n": 240, "value": 0.121, "low": 0.085, "high": 0.168},
    },
    "excluded": 12, "errors": [], "forced": True, "actor": "olga",
}  # fmt: skip


def test_field_block_shows_accuracies_with_intervals_and_counts() -> None:
    rows = dict(champion_fields(FIELD_CHECK))
    assert rows["champion check"] == "worse, FORCED by olga"
    assert rows["field samples"] == "240 (demo-05 120, demo-06 120), 2 skipped"
    assert rows["candidate v3"] == "12.9 % [9.3 %, 17.7 %] (31/240)"
    assert rows["champion v2"] == "95.8 % [92.5 %, 97.7 %] (230/240)"
    assert rows["agreement"] == "12.1 % [8.5 %, 16.8 %] (29/240)"
    assert rows["excluded"] == "12 samples the candidate was trained on"
    assert rows["test accuracy"] == "candidate 11.2 %, champion 99.6 %"


def test_a_check_without_a_champion_or_numbers_still_prints() -> None:
    rows = dict(champion_fields({"decision": "unknown", "reason": "no champion", "field": None,
                                 "candidate": {"name": "digits", "version": 1,
                                               "test_accuracy": None},
                                 "champion": None, "errors": ["no ONNX variant"]}))  # fmt: skip
    assert rows["champion check"] == "unknown"
    assert "against" not in rows
    assert rows["test accuracy"] == "candidate -"
    assert rows["not run"] == "no ONNX variant"
