"""Two-class metrics agree with scikit-learn, ties included, and refuse what they cannot do."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from cloud.export import binary
from edge.errors import DataError


def _data(seed: int, n: int = 200, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = np.clip(0.5 + 0.25 * (2 * y - 1) + rng.normal(scale=0.3, size=n), 0, 1)
    return y, (np.round(s, 1) if ties else s)


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, True)])
def test_curves_and_areas_match_scikit_learn(seed: int, ties: bool) -> None:
    y, s = _data(seed, ties=ties)
    roc = binary.roc_curve(y, s)
    fpr, tpr, _ = skm.roc_curve(y, s, drop_intermediate=False)
    assert np.allclose(roc.x, fpr) and np.allclose(roc.y, tpr)
    assert binary.roc_auc(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    assert binary.auc_or_nan(y, s) == pytest.approx(skm.roc_auc_score(y, s))
    pr = binary.precision_recall_curve(y, s)
    precision, recall, _ = skm.precision_recall_curve(y, s, drop_intermediate=False)
    assert np.allclose(pr.x, recall[::-1]) and np.allclose(pr.y, precision[::-1])
    assert binary.average_precision(y, s) == pytest.approx(skm.average_precision_score(y, s))


def test_threshold_rows_match_scikit_learn_at_each_threshold() -> None:
    y, s = _data(3)
    for row in binary.threshold_table(y, s):
        pred = (s >= row.threshold).astype(int)
        assert row.precision == pytest.approx(skm.precision_score(y, pred, zero_division=0))
        assert row.recall == pytest.approx(skm.recall_score(y, pred))
        assert row.f1 == pytest.approx(skm.f1_score(y, pred))
        tn, fp, _, _ = skm.confusion_matrix(y, pred).ravel()
        assert row.fpr == pytest.approx(fp / (fp + tn))
        assert row.flagged == int(pred.sum())
    assert [r.threshold for r in binary.threshold_table(y, s, [0.5, 0.2, 0.5])] == [0.2, 0.5]


def test_best_f1_threshold_is_the_best_of_all_thresholds() -> None:
    y, s = _data(4)
    best = binary.best_f1_threshold(y, s)
    f1_best = binary.at_threshold(y, s, best).f1
    for t in np.unique(s):
        assert binary.at_threshold(y, s, t).f1 <= f1_best + 1e-12
    # a perfectly separable set: the threshold is the lowest positive score
    y2 = np.array([0, 0, 1, 1])
    assert binary.best_f1_threshold(y2, np.array([0.1, 0.2, 0.7, 0.9])) == 0.7


def test_nothing_flagged_gives_zero_precision_not_nan() -> None:
    row = binary.at_threshold(np.array([0, 1]), np.array([0.1, 0.2]), 0.9)
    assert (row.precision, row.recall, row.f1, row.fpr, row.flagged) == (0.0, 0.0, 0.0, 0.0, 0)


def test_undefined_statistics_are_refused_or_nan() -> None:
    y, s = np.array([1, 1, 1]), np.array([0.2, 0.5, 0.9])
    with pytest.raises(DataError, match="both classes"):
        binary.roc_auc(y, s)
    with pytest.raises(DataError, match="both classes"):
        binary.roc_curve(y, s)
    assert np.isnan(binary.auc_or_nan(y, s))
    zeros = np.zeros(3, dtype=int)
    with pytest.raises(DataError, match="positive"):
        binary.average_precision(zeros, s)
    with pytest.raises(DataError, match="positive"):
        binary.best_f1_threshold(zeros, s)
    assert np.isnan(binary.ap_or_nan(zeros, s))


@pytest.mark.parametrize(
    "y,s,match",
    [
        (np.array([0, 2]), np.array([0.1, 0.2]), "0 .negative. or 1"),
        (np.array([0, 1]), np.array([0.1, np.nan]), "NaN"),
        (np.array([0, 1]), np.array([0.1]), "one length"),
        (np.array([], dtype=int), np.array([]), "at least one"),
    ],
)
def test_bad_inputs_get_a_clear_error(y: np.ndarray, s: np.ndarray, match: str) -> None:
    with pytest.raises(DataError, match=match):
        binary.at_threshold(y, s, 0.5)
