from __future__ import annotations

import numpy as np
import pytest

from cloud.data.dataset import Dataset
from cloud.data.images import resize_images
from cloud.data.preprocess import apply_preprocessing, fit_preprocessing
from cloud.data.sources import load_digits
from edge.errors import DataError
from tests.digits import DIGITS_PREPROCESSING


def test_digits_preprocessing_matches_the_interface() -> None:
    ds = load_digits()
    spec = fit_preprocessing(ds, np.arange(10))
    assert spec == DIGITS_PREPROCESSING
    out = apply_preprocessing(spec, ds.x[:5])
    assert out.dtype == np.float32 and out.min() >= 0 and out.max() <= 1


def test_tabular_statistics_come_from_the_train_rows_only() -> None:
    x = np.array([[1, 5], [3, 5], [100, 5]], np.float32)
    ds = Dataset(
        x=x,
        y=np.array([0, 1, 0]),
        labels=["a", "b"],
        kind="tabular",
        source="s",
        feature_names=["u", "v"],
    )
    spec = fit_preprocessing(ds, np.array([0, 1]))
    assert spec["mean"] == [2.0, 5.0] and spec["std"] == [1.0, 1.0]  # constant v -> std 1
    np.testing.assert_allclose(apply_preprocessing(spec, x[:2]), [[-1, 0], [1, 0]])


def test_resize_upsamples_and_replicates_channels() -> None:
    x = np.random.default_rng(0).random((2, 8, 8, 1)).astype(np.float32) * 16
    out = resize_images(x, 32, 3)
    assert out.shape == (2, 32, 32, 3)
    assert np.array_equal(out[..., 0], out[..., 2])
    assert out.min() >= 0 and out.max() <= 16  # bilinear keeps the raw range
    with pytest.raises(DataError, match="RGB"):
        resize_images(np.zeros((1, 4, 4, 3), np.float32), 4, 1)
