"""Metrics against hand-computed values and, where installed, scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from cloud.export.metrics import (
    accuracy,
    class_report,
    confusion_matrix,
    disagreements,
    evaluate,
    expected_calibration_error,
    log_loss,
    macro_f1,
    reliability,
    sample_log_loss,
    top1_agreement,
)
from edge.errors import DataError

Y_TRUE = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 1])
Y_PRED = np.array([0, 0, 1, 1, 2, 2, 2, 0, 2, 1])


def test_confusion_matrix_by_hand() -> None:
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == [[2, 1, 0], [0, 2, 1], [1, 0, 3]]
    assert accuracy(Y_TRUE, Y_PRED) == pytest.approx(0.7)


def test_class_report_by_hand() -> None:
    rep = class_report(confusion_matrix(Y_TRUE, Y_PRED, 3))
    # class 0: tp 2, predicted 3, true 3 -> p 2/3, r 2/3
    # class 1: tp 2, predicted 3, true 3 -> p 2/3, r 2/3
    # class 2: tp 3, predicted 4, true 4 -> p 3/4, r 3/4
    assert rep.precision == pytest.approx([2 / 3, 2 / 3, 3 / 4])
    assert rep.recall == pytest.approx([2 / 3, 2 / 3, 3 / 4])
    assert rep.f1 == pytest.approx([2 / 3, 2 / 3, 3 / 4])
    assert rep.support.tolist() == [3, 3, 4]
    assert rep.macro_f1() == pytest.approx((2 / 3 + 2 / 3 + 3 / 4) / 3)
    assert rep.weighted_f1() == pytest.approx((2 + 2 + 3) / 10)


def test_never_predicted_class_scores_zero_not_nan() -> None:
    rep = class_report(confusion_matrix(np.array([0, 1, 2]), np.array([0, 0, 0]), 3))
    assert rep.precision.tolist() == pytest.approx([1 / 3, 0.0, 0.0])
    assert rep.recall.tolist() == [1.0, 0.0, 0.0]
    assert not np.isnan(rep.f1).any()


def test_matches_sklearn_on_random_labels() -> None:
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    t = rng.integers(0, 5, 500)
    p = np.where(rng.random(500) < 0.6, t, rng.integers(0, 5, 500))
    cm = confusion_matrix(t, p, 5)
    assert (cm == sk.confusion_matrix(t, p, labels=range(5))).all()
    rep = class_report(cm)
    pr, rc, f1, sup = sk.precision_recall_fscore_support(t, p, labels=range(5), zero_division=0)
    assert rep.precision == pytest.approx(pr)
    assert rep.recall == pytest.approx(rc)
    assert rep.f1 == pytest.approx(f1)
    assert (rep.support == sup).all()


def test_ece_by_hand() -> None:
    scores = np.array([[0.7, 0.3], [0.6, 0.4], [0.2, 0.8], [0.1, 0.9]])
    # top-1 confidence 0.7, 0.6, 0.8, 0.9; predictions 0, 0, 1, 1 -> right, wrong, right, wrong
    # 2 bins: all in (0.5, 1] with mean confidence 0.75, accuracy 0.5 -> ECE 0.25
    y = np.array([0, 1, 1, 0])
    rel = reliability(scores, y, n_bins=2)
    assert rel.counts.tolist() == [0, 4]
    assert rel.ece == pytest.approx(abs(0.75 - 0.5))
    rel10 = reliability(scores, y, n_bins=10)
    # bins (0.5,0.6]: .6 wrong; (0.6,0.7]: .7 right; (0.7,0.8]: .8 right; (0.8,0.9]: .9 wrong
    assert rel10.counts[5:9].tolist() == [1, 1, 1, 1]
    assert rel10.ece == pytest.approx((0.6 + 0.3 + 0.2 + 0.9) / 4)


def test_ece_of_a_perfectly_calibrated_model_is_about_zero() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    conf = rng.uniform(0.5, 1.0, n)
    y_pred = rng.integers(0, 2, n)
    correct = rng.random(n) < conf  # right exactly as often as it claims
    y_true = np.where(correct, y_pred, 1 - y_pred)
    scores = np.where(y_pred[:, None] == np.arange(2), conf[:, None], 1 - conf[:, None])
    assert expected_calibration_error(scores, y_true, n_bins=10) < 0.01


def test_ece_of_an_overconfident_model_is_large() -> None:
    scores = np.tile([[0.99, 0.01]], (100, 1))
    y = np.array([0] * 50 + [1] * 50)
    assert expected_calibration_error(scores, y) == pytest.approx(0.49)


def test_confidence_of_exactly_one_lands_in_last_bin() -> None:
    rel = reliability(np.array([[1.0, 0.0]]), np.array([0]), n_bins=4)
    assert rel.counts.tolist() == [0, 0, 0, 1]
    assert rel.ece == pytest.approx(0.0)


def test_agreement_and_disagreements() -> None:
    a = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    b = np.array([[0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.1, 0.9]])
    assert top1_agreement(a, b) == pytest.approx(0.75)
    assert disagreements(a, b).tolist() == [1]


def test_evaluate_bundles_everything() -> None:
    scores = np.eye(3)[Y_PRED] * 0.9 + 0.1 / 3
    ev = evaluate(scores, Y_TRUE, n_bins=5)
    assert ev.accuracy == pytest.approx(0.7)
    assert ev.confusion.sum() == len(Y_TRUE)
    assert ev.ece == pytest.approx(abs((0.9 + 0.1 / 3) - 0.7))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: confusion_matrix(np.array([0, 1]), np.array([0]), 2), "1 samples"),
        (lambda: confusion_matrix(np.array([0, 3]), np.array([0, 1]), 2), "only 2 classes"),
        (lambda: confusion_matrix(np.array([0, -1]), np.array([0, 1]), 2), "negative"),
        (lambda: accuracy(np.array([0.5, 1.0]), np.array([0, 1])), "integer"),
        (lambda: accuracy(np.array([[0, 1]]), np.array([0, 1])), "1-D"),
        (lambda: accuracy(np.array([], dtype=int), np.array([], dtype=int)), "no samples"),
        (lambda: reliability(np.array([[np.nan, 1.0]]), np.array([0])), "NaN"),
        (lambda: reliability(np.array([0.5, 0.5]), np.array([0])), "2-D"),
        (lambda: reliability(np.array([[0.5, 0.5]]), np.array([0]), n_bins=0), "n_bins"),
        (lambda: top1_agreement(np.ones((2, 3)), np.ones((2, 4))), "classes"),
        (lambda: class_report(np.ones((2, 3))), "square"),
    ],
)
def test_bad_inputs_raise_data_error(call, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=message):
        call()


def test_macro_f1_matches_the_class_report_and_scikit_learn() -> None:
    from sklearn.metrics import f1_score

    assert macro_f1(Y_TRUE, Y_PRED, 3) == pytest.approx(f1_score(Y_TRUE, Y_PRED, average="macro"))
    cm = confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert macro_f1(Y_TRUE, Y_PRED, 3) == pytest.approx(class_report(cm).macro_f1())
    with pytest.raises(DataError, match="only 3 classes"):
        macro_f1(Y_TRUE, Y_PRED + 1, 3)


def test_log_loss_matches_scikit_learn_and_stays_finite_on_zero_scores() -> None:
    from sklearn.metrics import log_loss as sk_log_loss

    rng = np.random.default_rng(0)
    z = rng.normal(size=(40, 3))
    scores = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    y = rng.integers(0, 3, 40)
    assert log_loss(scores, y) == pytest.approx(sk_log_loss(y, scores, labels=[0, 1, 2]))
    hard = np.array([[1.0, 0.0], [0.0, 1.0]])
    per_row = sample_log_loss(hard, np.array([1, 1]))
    assert per_row[1] == 0.0
    assert per_row[0] == pytest.approx(-np.log(1e-7))  # clipped, not infinite
    with pytest.raises(DataError, match="class index 2"):
        log_loss(hard, np.array([0, 2]))
