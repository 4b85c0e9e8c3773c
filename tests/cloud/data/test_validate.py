from __future__ import annotations

import numpy as np
import pytest

from cloud.data.dataset import Dataset
from cloud.data.validate import validate
from edge.errors import DataError


def _tab(x: np.ndarray, y: list[int], labels: list[str] | None = None) -> Dataset:
    labels = labels or [str(i) for i in range(max(y) + 1)]
    names = [f"c{i}" for i in range(x.shape[1])]
    return Dataset(
        x=x.astype(np.float32),
        y=np.asarray(y),
        labels=labels,
        kind="tabular",
        source="t.csv",
        feature_names=names,
    )


def test_good_dataset_passes() -> None:
    validate(_tab(np.zeros((6, 2)), [0, 0, 0, 1, 1, 1]))


def test_nan_and_inf_are_counted_per_column() -> None:
    x = np.zeros((6, 3))
    x[0, 0] = np.nan
    x[1, 2] = np.inf
    x[2, 2] = -np.inf
    with pytest.raises(DataError, match=r"3 NaN/inf/missing values in columns c0 \(1\), c2 \(2\)"):
        validate(_tab(x, [0, 0, 0, 1, 1, 1]))


def test_nan_in_images_names_the_images() -> None:
    x = np.zeros((6, 2, 2, 1), np.float32)
    x[4, 0, 0, 0] = np.nan
    ds = Dataset(
        x=x,
        y=np.array([0, 0, 0, 1, 1, 1]),
        labels=["a", "b"],
        kind="image",
        source="i.npz",
        raw_range=(0, 1),
    )
    with pytest.raises(
        DataError, match=r"1 NaN/inf/missing values in 1 images \(first: sample #4\)"
    ):
        validate(ds)


def test_single_class_is_refused() -> None:
    with pytest.raises(DataError, match=r"need at least 2 classes, found 1 \('0'\)"):
        validate(_tab(np.zeros((5, 1)), [0] * 5))


def test_small_class_is_named_with_its_count() -> None:
    with pytest.raises(DataError, match=r"'rare' has 2; each class needs at least 3"):
        validate(_tab(np.zeros((7, 1)), [0] * 5 + [1] * 2, ["common", "rare"]))


def test_error_messages_are_one_line() -> None:
    x = np.full((40, 30), np.nan)
    with pytest.raises(DataError) as info:
        validate(_tab(x, [0] * 20 + [1] * 20))
    assert "\n" not in str(info.value)
    assert "... (30 columns)" in str(info.value)
