"""Opening sections: the data report stays valid JSON, warnings show, paths do not."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cloud.export.card import overview


def _run(n_features: int = 200) -> dict[str, Any]:
    features = [
        {"name": f"feature_{i:03d}", "min": -1.0, "max": 2.0 + i, "mean": 0.5, "std": 1.25}
        for i in range(n_features)
    ]
    return {
        "kind": "tabular",
        "seed": 1,
        "hyperparameters": {"epochs": 50, "card_info": "/home/alice/cards/wine.toml"},
        "metrics": {"best_epoch": 50, "epochs_run": 50, "val_accuracy": 0.93},
        "warnings": ["best epoch was the last (50/50): the model may be under-fit"],
        "dataset": {
            "source": "/home/alice/private/wine.csv",
            "fingerprint": "sha256:ab",
            "report": {
                "source": "/home/alice/private/wine.csv",
                "kind": "tabular",
                "samples": 178,
                "classes": {"a": 59, "b": 71, "c": 48},
                "splits": {"train": 124, "val": 27, "test": 27},
                "skipped": {"count": 0, "examples": []},
                "features": features,
                "group_column": "site",
            },
        },
    }


def test_long_data_report_is_a_whole_valid_json_file_not_a_cut_block(tmp_path: Path) -> None:
    run = _run(200)
    path = overview.write_data_report(run, tmp_path)
    assert path is not None and path.name == "data-report.json"
    doc = json.loads(path.read_text())  # valid JSON, however long
    assert len(path.read_text()) > 4000
    assert len(doc["features"]) == 200
    assert doc["features"][-1]["name"] == "feature_199"
    assert doc["source"] == "wine.csv"  # no build-machine directories
    text = overview.lineage(run, np.array([0, 1, 2]), ["a", "b", "c"], path.name)
    assert "```json" not in text
    assert "| feature_029 |" in text and "| feature_030 |" not in text  # table cut, file whole
    assert "170 more (see data-report.json)" in text
    assert "[`data-report.json`](data-report.json)" in text
    assert "also: group_column" in text  # keys the card does not render are pointed to


def test_no_data_report_without_one(tmp_path: Path) -> None:
    assert overview.write_data_report({}, tmp_path) is None
    assert not (tmp_path / "data-report.json").exists()


def test_lineage_and_intended_use_name_the_file_not_the_path() -> None:
    run = _run(3)
    text = overview.lineage(run, np.array([0, 1]), ["a", "b", "c"], None)
    text += overview.intended_use(run, ["a", "b", "c"])
    assert "/home/alice" not in text
    assert "`wine.csv`" in text and "wine.toml" in text
    assert "best epoch / epochs run | 50 / 50" in text


def test_training_warnings_are_shown_and_absent_without_any() -> None:
    text = overview.training_warnings(_run())
    assert text.startswith("## Training warnings")
    assert "- best epoch was the last (50/50)" in text
    assert overview.training_warnings({}) == ""
    assert overview.training_warnings({"warnings": []}) == ""
    odd = overview.training_warnings({"warnings": [{"message": "lr too high"}, "  ", 3]})
    assert "- lr too high" in odd and "- 3" in odd and "-  \n" not in odd
