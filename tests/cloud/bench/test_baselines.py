"""The baselines benchmark: its statistics and table without TensorFlow, and one real run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.bench.baselines import (
    COLUMNS,
    INT8_TARGETS,
    accuracy,
    agreement,
    check_same_rows,
    fit_baselines,
    main,
    paired_difference,
    read_split,
    table_rows,
)
from cloud.bench.tabular_sets import Table, iris
from cloud.data.preprocess import apply_preprocessing
from edge.errors import EdgekitError


def test_accuracy_carries_its_count_and_wilson_interval() -> None:
    y = np.array([0, 1, 1, 0, 1, 1, 0, 0, 1, 1])
    pred = y.copy()
    pred[:2] = 1 - pred[:2]
    acc = accuracy(pred, y)
    assert (acc["correct"], acc["n"], acc["accuracy"]) == (8, 10, 0.8)
    low, high = acc["ci95"]
    assert 0.44 < low < 0.8 < high < 0.97  # Wilson 95 % for 8/10 is about [0.49, 0.94]


def test_paired_difference_counts_only_the_rows_where_the_two_disagree() -> None:
    y = np.zeros(20, dtype=int)
    a, b = y.copy(), y.copy()
    a[0] = 1  # only b right
    b[1:4] = 1  # only a right (3 rows)
    a[5] = b[5] = 1  # both wrong: no information about the difference
    d = paired_difference(a, b, y)
    assert (d["only_first_right"], d["only_second_right"]) == (3, 1)
    assert d["difference"] == pytest.approx(0.1)
    assert d["ci95"][0] < 0.1 < d["ci95"][1]
    same = paired_difference(a, a, y)
    assert same["difference"] == 0 and same["ci95"][0] < 0 < same["ci95"][1]


def test_agreement_uses_every_input_the_export_measured() -> None:
    row = {"agreement_all": 0.98, "agreement_inputs": 150, "agreement": 1.0, "included": True}
    a = agreement(row)
    assert a is not None
    assert (a["agreed"], a["n"], a["test_agreement"], a["included"]) == (147, 150, 1.0, True)
    assert a["ci95"][0] < 0.98 < a["ci95"][1] <= 1.0
    assert agreement({"agreement": 1.0}) is None  # no all-inputs measure: not made up


def _split_for(table: Table, tmp_path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A run-like preprocessing + data.npz for ``table`` with a simple fixed split."""
    n = len(table.x)
    idx = {"train": np.arange(0, n, 2), "val": np.arange(1, n, 4), "test": np.arange(3, n, 4)}
    labels = sorted(set(table.labels))
    y = np.array([labels.index(s) for s in table.labels])
    mean, std = table.x[idx["train"]].mean(0), table.x[idx["train"]].std(0)
    prep = {"kind": "tabular", "features": table.features, "mean": list(mean), "std": list(std)}
    arrays: dict[str, np.ndarray] = {}
    for p, i in idx.items():
        arrays |= {
            f"x_{p}": apply_preprocessing(prep, table.x[i]),
            f"y_{p}": y[i],
            f"index_{p}": i,
        }
    np.savez(tmp_path / "data.npz", **arrays)  # type: ignore[arg-type]
    return {"labels": labels, "preprocessing": prep}, read_split(tmp_path)


def test_the_recorded_rows_are_checked_before_anything_is_compared(tmp_path: Path) -> None:
    table = iris()
    run, split = _split_for(table, tmp_path)
    check_same_rows(table, run, split)  # consistent: no error
    preds = fit_baselines(table, split)
    assert set(preds) == {"logreg", "histgb"}
    assert accuracy(preds["logreg"], split["y_test"])["accuracy"] > 0.85
    shifted = {**split, "index_test": split["index_test"] - 1}
    with pytest.raises(EdgekitError, match=r"iris: the test (labels|rows) do not match"):
        check_same_rows(table, run, shifted)
    np.savez(tmp_path / "data.npz", x_train=np.zeros((2, 1)), y_train=np.zeros(2))
    with pytest.raises(EdgekitError, match="no index_train, index_test: retrain"):
        read_split(tmp_path)


def test_table_rows_follow_the_columns() -> None:
    acc = {"accuracy": 0.9, "ci95": [0.8, 0.95]}
    agree = {"agreement": 0.995, "ci95": [0.99, 0.999]}
    result = {
        "dataset": "toy",
        "splits": {"train": 70, "val": 15, "test": 15},
        "edgekit": acc,
        "logreg": acc,
        "histgb": acc,
        "edgekit_minus_logreg": {"difference": -0.02, "ci95": [-0.1, 0.05]},
        "best_epoch": 40,
        "epochs_run": 70,
        "max_epochs": 500,
        "int8_agreement": {INT8_TARGETS[0]: agree},
        "left_out": {INT8_TARGETS[1]: "why"},
    }
    (row,) = table_rows([result])
    assert len(row) == len(COLUMNS)
    cells = dict(zip(COLUMNS, row, strict=True))
    assert cells["edgekit acc % [95% CI]"] == "90.0 [80.0, 95.0]"
    assert cells["edgekit - LogReg pts [95% CI]"] == "-2.0 [-10.0, +5.0]"
    assert cells["best epoch / run (max)"] == "40 / 70 (500)"
    assert cells[f"{INT8_TARGETS[0]} agree % [95% CI]"] == "99.5 [99.0, 99.9]"
    assert cells[f"{INT8_TARGETS[2]} agree % [95% CI]"] == "n/a"
    assert cells["left out by the gate"] == INT8_TARGETS[1]


def test_unknown_dataset_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path), "--datasets", "nope"]) == 1
    assert "error: unknown dataset(s) nope" in capsys.readouterr().err


@pytest.mark.slow
def test_iris_through_train_export_and_baselines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--out", str(tmp_path), "--datasets", "iris", "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)  # stdout is the JSON alone; progress went to stderr
    assert "iris: edgekit export" in captured.err
    (r,) = doc["data"]["results"]
    assert r["dataset"] == "iris" and r["splits"] == {"train": 102, "val": 24, "test": 24}
    for model in ("edgekit", "logreg", "histgb"):
        acc = r[model]
        assert acc["n"] == 24 and acc["ci95"][0] <= acc["accuracy"] <= acc["ci95"][1]
    assert r["edgekit"]["accuracy"] >= r["logreg"]["accuracy"] - 1 / 24 - 1e-9
    assert r["best_epoch"] < r["epochs_run"] <= r["max_epochs"] == 500
    assert set(r["int8_agreement"]) == set(INT8_TARGETS)
    for a in r["int8_agreement"].values():
        assert a["n"] == 150 and a["ci95"][0] <= a["agreement"] <= a["ci95"][1]
    (table,) = doc["tables"]
    assert table["columns"] == COLUMNS and table["rows"][0][0] == "iris"
    assert (tmp_path / "work" / "baselines" / "iris" / "iris.ekb").is_file()
