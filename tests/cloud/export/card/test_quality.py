"""Headline numbers carry their intervals, reproducibly."""

from __future__ import annotations

import numpy as np
import pytest

from cloud.export.card import quality
from cloud.export.stats import wilson_interval


def _scores(seed: int, n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    z = rng.normal(size=(n, k))
    z[np.arange(n), y] += 1.5
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True), y


def test_accuracy_interval_is_wilson_and_bootstraps_are_seeded() -> None:
    s, y = _scores(0, 69, 3)
    q = quality.measure(s, y, seed=4)
    correct = int(np.sum(s.argmax(1) == y))
    assert q.accuracy_ci == wilson_interval(correct, 69)
    assert q.macro_f1_ci is not None and q.ece_ci is not None
    lo, hi = q.macro_f1_ci
    assert lo <= q.macro_f1 <= hi and hi - lo > 0.05  # 69 rows: a wide interval, honestly
    again = quality.measure(s, y, seed=4)
    assert (again.macro_f1_ci, again.ece_ci) == (q.macro_f1_ci, q.ece_ci)
    assert quality.measure(s, y, seed=5).macro_f1_ci != q.macro_f1_ci
    assert q.auc is None  # three classes: no ROC-AUC


def test_two_class_scores_get_roc_auc_with_interval() -> None:
    s, y = _scores(1, 120, 2)
    q = quality.measure(s, y)
    assert q.auc is not None and q.auc_ci is not None
    assert q.auc_ci[0] <= q.auc <= q.auc_ci[1]
    rows = dict(quality.headline_rows(q))
    assert rows["ROC-AUC"].startswith(f"{q.auc:.3f} [")
    assert "[" in rows["test accuracy (float model)"]


def test_one_class_test_split_has_no_auc_and_one_row_no_bootstrap() -> None:
    s = np.array([[0.2, 0.8], [0.4, 0.6]])
    q = quality.measure(s, np.array([1, 1]))
    assert q.auc is None
    one = quality.measure(s[:1], np.array([1]))
    assert one.accuracy == 1.0
    assert one.accuracy_ci[1] == pytest.approx(1.0)


def test_performance_section_states_the_intervals() -> None:
    s, y = _scores(2, 40, 2)
    text = quality.performance(quality.measure(s, y), ["neg", "pos"])
    assert "On 40 test samples" in text and "Wilson" in text and "ROC-AUC" in text
