"""Explanation aids find what a model really uses, on synthetic models with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from cloud.export.explain import (
    occlusion_saliency,
    permutation_importance,
    pick_examples,
    pick_mistakes,
)
from edge.errors import DataError


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_permutation_importance_finds_the_one_informative_feature() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    y = (x[:, 3] > 0).astype(np.int64)  # only feature 3 carries the label

    def predict(a: np.ndarray) -> np.ndarray:  # a model that uses f3 (and a little f0 noise)
        z = 4 * a[:, 3] + 0.01 * a[:, 0]
        return _softmax(np.stack([-z, z], axis=1))

    names = [f"feat{i}" for i in range(6)]
    fi = permutation_importance(predict, x, y, feature_names=names, n_repeats=3, seed=1)
    assert fi.baseline_accuracy > 0.97
    assert fi.names[fi.ranked()[0]] == "feat3"
    assert fi.mean[3] > 1.0  # shuffling it makes the model confidently wrong on half the rows
    assert fi.accuracy_drop[3] > 0.3
    assert not fi.noise[3] and fi.low[3] > 0
    for j in (1, 2, 4, 5):  # never looked at: exactly no effect, within noise
        assert fi.mean[j] == 0 and fi.noise[j]
    assert fi.std.shape == fi.low.shape == fi.high.shape == (6,)
    assert np.all(fi.low <= fi.mean) and np.all(fi.mean <= fi.high)
    assert (fi.n_rows, fi.n_repeats) == (400, 3)


def test_log_loss_importance_sees_what_accuracy_cannot_on_few_rows() -> None:
    # 86 noisy rows (a breast-cancer-sized test split). Shuffling f1, which the model uses
    # for part of its evidence, flips answers both ways: accuracy hardly moves (under one
    # row on average), but the model is consistently less sure of the right answer.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(86, 4)).astype(np.float32)
    y = (x[:, 0] + 0.3 * x[:, 1] + rng.normal(scale=0.6, size=86) > 0).astype(np.int64)

    def predict(a: np.ndarray) -> np.ndarray:
        z = 2 * a[:, 0] + 0.6 * a[:, 1]
        return _softmax(np.stack([-z, z], axis=1))

    fi = permutation_importance(predict, x, y, seed=0)
    assert fi.n_repeats == 10  # repeated by default
    assert abs(fi.accuracy_drop[1]) < 1 / 86  # accuracy: less than one row ...
    assert fi.mean[1] > 0.1 and fi.low[1] > 0 and not fi.noise[1]  # ... log-loss: clear rise
    assert fi.noise[2] and fi.noise[3]  # unused features stay within noise
    assert fi.ranked()[:2] == [0, 1]


def test_a_feature_with_spread_above_its_mean_is_within_noise() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 2)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)

    def predict(a: np.ndarray) -> np.ndarray:  # f1 has a tiny, sign-less effect
        z = 3 * a[:, 0] + 0.02 * np.sin(40 * a[:, 1])
        return _softmax(np.stack([-z, z], axis=1))

    fi = permutation_importance(predict, x, y, seed=3)
    assert not fi.noise[0]
    assert fi.noise[1]
    assert fi.low[1] <= 0 or fi.mean[1] < 2 * fi.std[1]


def test_permutation_importance_is_deterministic_for_a_seed() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)

    def predict(a: np.ndarray) -> np.ndarray:
        return _softmax(np.stack([-a[:, 0], a[:, 0]], axis=1))

    a = permutation_importance(predict, x, y, seed=7)
    b = permutation_importance(predict, x, y, seed=7)
    c = permutation_importance(predict, x, y, seed=8)
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.low, b.low)
    assert not np.array_equal(a.mean, c.mean)
    assert a.names == ["f0", "f1", "f2"]


def test_occlusion_finds_the_informative_region() -> None:
    # Class 1 iff the top-left 4x4 corner is bright; everything else is noise.
    rng = np.random.default_rng(2)
    imgs = rng.uniform(0, 0.2, size=(4, 16, 16, 1)).astype(np.float32)
    imgs[:2, :4, :4, :] = 1.0

    def predict(a: np.ndarray) -> np.ndarray:
        z = 10 * (a[:, :4, :4, 0].mean(axis=(1, 2)) - 0.5)
        return _softmax(np.stack([-z, z], axis=1))

    maps = occlusion_saliency(predict, imgs, patch=4, stride=2)
    assert maps.shape == (4, 16, 16)
    for k in range(2):  # images of class 1: hiding the corner removes the evidence
        corner = maps[k, :4, :4].mean()
        rest = np.abs(maps[k, 8:, 8:]).max()
        assert corner > 0.2
        assert rest < 1e-6
        assert np.unravel_index(maps[k].argmax(), maps[k].shape) < (4, 4)


def test_occlusion_default_patch_covers_edges_and_rgb() -> None:
    imgs = np.random.default_rng(3).uniform(size=(2, 10, 7, 3)).astype(np.float32)

    def predict(a: np.ndarray) -> np.ndarray:
        z = a[:, -1, -1, :].sum(axis=1)  # only the bottom-right pixel matters
        return _softmax(np.stack([-z, z], axis=1))

    maps = occlusion_saliency(predict, imgs)
    assert maps.shape == (2, 10, 7)
    assert np.abs(maps[:, -1, -1]).min() > 0  # the last row/column was occluded too


def test_pick_mistakes_spreads_over_true_classes_and_is_empty_without_mistakes() -> None:
    y = np.array([0] * 6 + [1] * 6 + [2] * 6)
    pred = y.copy()
    pred[[0, 1, 2, 6, 7, 12]] = [1, 2, 1, 0, 0, 0]  # 3 mistakes of class 0, 2 of 1, 1 of 2
    idx = pick_mistakes(y, pred, 3, seed=1)
    assert len(idx) == 3
    assert set(y[idx]) == {0, 1, 2}
    assert np.all(pred[idx] != y[idx])
    assert len(pick_mistakes(y, pred, 10)) == 6
    assert len(pick_mistakes(y, y, 4)) == 0
    assert len(pick_mistakes(y, pred, 0)) == 0


def test_pick_examples_spans_classes_within_budget() -> None:
    y = np.array([0] * 10 + [1] * 10 + [2] * 3)
    idx = pick_examples(y, per_class=2, max_total=5)
    assert len(idx) == 5
    assert set(y[idx]) == {0, 1, 2}
    assert len(set(idx.tolist())) == 5
    assert list(y[idx]) == sorted(y[idx])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda p: permutation_importance(p, np.zeros((5, 2, 2)), np.zeros(5)), "features"),
        (lambda p: permutation_importance(p, np.zeros((5, 2)), np.zeros(4)), "labelled"),
        (
            lambda p: permutation_importance(p, np.zeros((5, 2)), np.zeros(5), feature_names=["a"]),
            "names",
        ),
        (
            lambda p: permutation_importance(p, np.zeros((5, 2)), np.zeros(5), n_repeats=1),
            "at least 2",
        ),
        (lambda p: permutation_importance(p, np.zeros((5, 2)), np.full(5, 3)), "2 scores"),
        (
            lambda p: permutation_importance(p, np.zeros((5, 2)), np.zeros(5), confidence=1.0),
            "between",
        ),
        (lambda p: occlusion_saliency(p, np.zeros((2, 4, 4))), "images"),
        (lambda p: pick_mistakes(np.zeros(3), np.zeros(4), 2), "shape"),
        (lambda p: occlusion_saliency(p, np.zeros((1, 4, 4, 1)), patch=5), "do not fit"),
        (lambda p: occlusion_saliency(lambda a: np.zeros(len(a)), np.zeros((1, 4, 4, 1))), "shape"),
    ],
)
def test_bad_inputs_raise_data_error(call, message: str) -> None:  # type: ignore[no-untyped-def]
    def predict(a: np.ndarray) -> np.ndarray:
        return np.full((len(a), 2), 0.5)

    with pytest.raises(DataError, match=message):
        call(predict)
