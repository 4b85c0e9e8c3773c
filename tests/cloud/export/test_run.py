"""Reading the group arrays of a run dir: all three or none, one name per row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.export.run import load_run
from edge.errors import DataError


def _run(root: Path, groups: dict[str, Any] | None, **arrays: np.ndarray) -> Path:
    root.mkdir()
    info: dict[str, Any] = {"labels": ["a", "b"], "input": {}, "output": {}, "preprocessing": {}}
    if groups is not None:
        info["groups"] = groups
    (root / "run.json").write_text(json.dumps(info))
    (root / "reference.json").write_text("{}")
    (root / "model.keras").write_bytes(b"")
    base: dict[str, np.ndarray] = {}
    for s in ("train", "val", "test"):
        base[f"x_{s}"] = np.zeros((4, 3), np.float32)
        base[f"y_{s}"] = np.arange(4) % 2
        base[f"group_{s}"] = np.array(["p", "q", "p", "q"])
    base.update(arrays)
    savez: Any = np.savez
    savez(root / "data.npz", **{k: v for k, v in base.items() if v.size or k[0] != "g"})
    return root


def test_a_run_without_groups_has_none(tmp_path: Path) -> None:
    root = _run(
        tmp_path / "r", None, **{f"group_{s}": np.array([]) for s in ("train", "val", "test")}
    )
    run = load_run(root)
    assert run.groups is None and run.group_column is None


def test_groups_are_read_with_their_column(tmp_path: Path) -> None:
    run = load_run(_run(tmp_path / "r", {"column": "site"}))
    assert run.group_column == "site"
    assert run.groups is not None and run.groups["val"].tolist() == ["p", "q", "p", "q"]


@pytest.mark.parametrize(
    ("groups", "arrays", "message"),
    [
        ({"column": "site"}, {"group_val": np.array([])}, "lacks group_val"),
        (
            {"column": "site"},
            {"group_test": np.array(["p", "q"])},
            "one group name per row of y_test (4)",
        ),
        ({"column": "site"}, {"group_train": np.arange(4)}, "dtype 'i'"),
        (None, {}, "run.json 'groups' lacks 'column'"),
        ({"column": 3}, {}, "run.json 'groups' lacks 'column'"),
    ],
)
def test_inconsistent_group_arrays_are_refused(
    tmp_path: Path, groups: dict[str, Any] | None, arrays: dict[str, np.ndarray], message: str
) -> None:
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_run(_run(tmp_path / "r", groups, **arrays))
