"""The run dir carries the group column beside the splits, and the exporter reads it back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cloud.export.run import load_run
from cloud.train.rundir import group_arrays, groups_info, write_arrays, write_json


def test_group_arrays_are_aligned_with_the_splits_and_round_trip(tmp_path: Path) -> None:
    groups = np.array(["n", "s", "n", "s", "e", "n", "s", "e", "n"])
    parts = {"train": np.array([0, 1, 2, 4, 6]), "val": np.array([3, 5]), "test": np.array([7, 8])}
    arrays = group_arrays(groups, parts)
    assert arrays["group_test"].tolist() == ["e", "n"]
    assert all(a.dtype.kind == "U" for a in arrays.values())
    info = groups_info("site", groups, parts)
    assert info == {
        "column": "site",
        "values": ["e", "n", "s"],
        "counts": {
            "train": {"e": 1, "n": 2, "s": 2},
            "val": {"n": 1, "s": 1},
            "test": {"e": 1, "n": 1},
        },
    }
    root = tmp_path / "run"
    root.mkdir()
    data: dict[str, np.ndarray] = {}
    for name, idx in parts.items():
        data[f"x_{name}"] = np.zeros((len(idx), 2), np.float32)
        data[f"y_{name}"] = np.arange(len(idx)) % 2
    write_arrays(root / "data.npz", {**data, **arrays})
    write_json(
        root / "run.json",
        {"labels": ["a", "b"], "input": {}, "output": {}, "preprocessing": {}, "groups": info},
    )
    (root / "reference.json").write_text(json.dumps({}))
    (root / "model.keras").write_bytes(b"")
    run = load_run(root)  # no pickle needed for the unicode arrays
    assert run.group_column == "site"
    assert run.groups is not None
    assert {k: v.tolist() for k, v in run.groups.items()} == {
        "train": ["n", "s", "n", "e", "s"],
        "val": ["s", "n"],
        "test": ["e", "n"],
    }
