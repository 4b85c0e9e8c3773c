"""Which rows importance uses, and saliency on correct and misclassified images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloud.export.card.explanation import importance_rows, importance_section, saliency_section
from edge.errors import DataError


def _splits(
    n_train: int, n_val: int, n_test: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    sizes = {"train": n_train, "val": n_val, "test": n_test}
    x = {s: rng.normal(size=(n, 3)).astype(np.float32) for s, n in sizes.items()}
    y = {s: (x[s][:, 0] > 0).astype(np.int64) for s in sizes}
    return x, y


def test_small_held_out_splits_are_topped_up_from_training_and_said_so() -> None:
    x, y = _splits(400, 27, 27)
    rows = importance_rows(x, y, seed=1)
    assert len(rows.x) == len(rows.y) == 454  # held-out rows + every training row (< 500)
    assert "27 validation and 27 test rows plus 400 training rows" in rows.what
    x2, y2 = _splits(5000, 30, 30)
    rows2 = importance_rows(x2, y2, seed=1)
    assert len(rows2.x) == 500 and "plus 440 training rows" in rows2.what
    assert np.array_equal(rows2.x[:30], x2["val"])  # held-out rows come first, whole
    assert np.array_equal(importance_rows(x2, y2, seed=1).x, rows2.x)  # seeded


def test_large_held_out_splits_are_sampled_down() -> None:
    x, y = _splits(100, 1500, 1500)
    rows = importance_rows(x, y, seed=0)
    assert len(rows.x) == 2000
    assert rows.what == "a seeded sample of 2000 of the 1500 validation and 1500 test rows"
    with pytest.raises(DataError, match="validation or test"):
        importance_rows({"train": x["train"]}, {"train": y["train"]})


def test_importance_section_says_which_rows_and_marks_noise(tmp_path: Path) -> None:
    x, y = _splits(400, 27, 27)

    def predict(a: np.ndarray) -> np.ndarray:
        z = 3 * a[:, 0]
        p = 1 / (1 + np.exp(-z))
        return np.stack([1 - p, p], axis=1)

    rows = importance_rows(x, y, seed=0)
    text, pngs = importance_section(predict, rows, ["signal", "n1", "n2"], tmp_path, 0)
    assert rows.what in text and "(454 rows)" in text and "10 shuffles" in text
    assert "| `signal` |" in text.split("| feature |")[1].splitlines()[2]
    assert "**relied on**" in text
    assert "Within noise (2 of 3): `n1`, `n2`." in text
    assert [p.name for p in pngs] == ["feature_importance.png"]


def test_saliency_shows_correct_and_wrong_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(size=(12, 8, 8, 1)).astype(np.float32)
    y = np.repeat([0, 1, 2], 4)
    pred = y.copy()
    pred[[0, 5]] = [2, 0]

    def predict(a: np.ndarray) -> np.ndarray:
        return np.full((len(a), 3), 1 / 3)

    labels = ["cat", "dog", "owl"]
    text, pngs = saliency_section(predict, x, y, pred, labels, tmp_path, seed=0)
    assert "3 correctly classified test images" in text
    assert "2 of the 2 misclassified test images" in text
    assert [p.name for p in pngs] == ["saliency.png"]
    text2, _ = saliency_section(predict, x, y, y, labels, tmp_path, seed=0)
    assert "made no mistake" in text2
