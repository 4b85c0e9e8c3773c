"""Per-group metrics and the largest gap, on synthetic arrays (no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from cloud.export.fairness import (
    MIN_GROUP_ROWS,
    group_metrics,
    group_report,
    independent_difference_interval,
    largest_gap,
)
from cloud.export.stats import wilson_interval
from edge.errors import DataError


def _onehot(pred: np.ndarray, n_classes: int) -> np.ndarray:
    return np.eye(n_classes, dtype=np.float32)[pred]


def _data(n_a: int, wrong_a: int, n_b: int, wrong_b: int) -> tuple[np.ndarray, ...]:
    """Two groups with balanced binary labels; the first ``wrong_*`` rows of each are wrong."""
    y = np.array([i % 2 for i in range(n_a + n_b)])
    groups = np.array(["a"] * n_a + ["b"] * n_b)
    pred = y.copy()
    pred[:wrong_a] = 1 - pred[:wrong_a]
    pred[n_a : n_a + wrong_b] = 1 - pred[n_a : n_a + wrong_b]
    return y, pred, groups


def test_group_metrics_count_and_interval_per_group() -> None:
    y, pred, groups = _data(40, 2, 30, 9)
    rows = {r.group: r for r in group_metrics(y, pred, groups, 2)}
    assert (rows["a"].n, rows["a"].correct) == (40, 38)
    assert (rows["b"].n, rows["b"].correct) == (30, 21)
    assert rows["b"].accuracy == pytest.approx(0.7)
    assert rows["b"].interval == wilson_interval(21, 30)
    assert 0.0 < rows["b"].macro_f1 < 1.0


def test_macro_f1_ignores_classes_absent_from_a_group() -> None:
    y = np.array([0, 0, 0, 1, 2, 2])
    groups = np.array(["only0", "only0", "only0", "mix", "mix", "mix"])
    rows = {r.group: r for r in group_metrics(y, y.copy(), groups, 3)}
    assert rows["only0"].macro_f1 == 1.0  # a perfect group is not dragged down by classes 1, 2
    assert rows["mix"].macro_f1 == 1.0


def test_a_large_gap_between_large_groups_is_significant() -> None:
    y, pred, groups = _data(200, 4, 200, 60)
    gap = largest_gap(group_metrics(y, pred, groups, 2))
    assert (gap["best"], gap["worst"]) == ("a", "b")
    assert gap["gap"] == pytest.approx(0.98 - 0.70)
    assert gap["significant"] is True and gap["interval"][0] > 0
    assert "significantly worse" in gap["note"]


def test_a_gap_between_small_groups_is_called_noise() -> None:
    y, pred, groups = _data(8, 0, 8, 2)  # 100 % vs 75 % on eight rows each
    gap = largest_gap(group_metrics(y, pred, groups, 2))
    assert gap["gap"] == pytest.approx(0.25)
    assert gap["significant"] is False and gap["interval"][0] < 0 < gap["interval"][1]
    assert f"fewer than two groups have {MIN_GROUP_ROWS} or more test rows" in gap["note"]
    assert "mostly noise" in gap["note"]


def test_an_overlapping_gap_of_adequate_groups_is_not_significant() -> None:
    y, pred, groups = _data(30, 1, 30, 3)
    gap = largest_gap(group_metrics(y, pred, groups, 2))
    assert gap["significant"] is False and "cannot tell 'a' and 'b' apart" in gap["note"]


def test_tiny_groups_are_left_out_of_the_comparison() -> None:
    y = np.array([0, 1] * 30 + [0, 1])
    groups = np.array(["a"] * 30 + ["b"] * 30 + ["tiny"] * 2)
    pred = y.copy()
    pred[-2:] = 1 - pred[-2:]  # the tiny group is all wrong: 0 %
    gap = largest_gap(group_metrics(y, pred, groups, 2))
    assert gap["compared"] == ["a", "b"] and gap["too_small"] == ["tiny"]
    assert gap["gap"] == 0.0 and "tiny" in gap["note"]
    assert gap["best"] != gap["worst"] and "the same accuracy (100.0%)" in gap["note"]


def test_one_group_has_no_gap() -> None:
    y = np.array([0, 1, 0, 1])
    gap = largest_gap(group_metrics(y, y, np.array(["a"] * 4), 2))
    assert gap["gap"] is None and "only one group" in gap["note"]


def test_newcombe_interval_contains_the_difference_and_widens_for_small_groups() -> None:
    lo, hi = independent_difference_interval(90, 100, 70, 100)
    assert lo < 0.2 < hi and lo > 0
    lo_small, hi_small = independent_difference_interval(9, 10, 7, 10)
    assert lo_small < lo and hi_small > hi
    assert (
        independent_difference_interval(10, 10, 10, 10)[0]
        < 0
        < (independent_difference_interval(10, 10, 10, 10)[1])
    )  # equal perfect groups: the interval still has width
    with pytest.raises(ValueError):
        independent_difference_interval(1, 0, 1, 1)


def test_group_report_covers_float_and_each_evaluated_variant() -> None:
    y, pred, groups = _data(40, 0, 40, 4)
    float_scores = _onehot(pred, 2)
    bad = pred.copy()
    bad[40:60] = 1 - bad[40:60]  # the variant ruins group b
    report = group_report(
        column="site",
        y_true=y,
        groups=groups,
        float_scores=float_scores,
        variants=[
            {"target": "litert-int8", "included": False, "scores": _onehot(bad, 2)},
            {"target": "onnx-int8", "included": False, "scores": None},  # failed: skipped
        ],
        n_classes=2,
        split_counts={"train": {"a": 100, "b": 100, "c": 3}, "test": {"a": 40, "b": 40}},
    )
    assert report["column"] == "site" and report["split"] == "test"
    assert list(report["models"]) == ["float", "litert-int8"]
    assert report["models"]["float"]["included"] is None
    assert report["models"]["litert-int8"]["included"] is False
    float_b = report["models"]["float"]["groups"][1]
    assert float_b == {
        "group": "b", "n": 40, "correct": 36, "accuracy": 0.9,
        "interval": [round(v, 6) for v in wilson_interval(36, 40)], "macro_f1": float_b["macro_f1"],
    }  # fmt: skip
    assert report["models"]["litert-int8"]["gap"]["significant"] is True
    assert report["absent_from_test"] == ["c"]


def test_misaligned_inputs_are_refused() -> None:
    with pytest.raises(DataError, match="must be aligned"):
        group_metrics(np.array([0, 1]), np.array([0, 1]), np.array(["a"]), 2)
    with pytest.raises(DataError, match="do not match"):
        group_report(
            column="g",
            y_true=np.array([0, 1]),
            groups=np.array(["a", "b"]),
            float_scores=np.zeros((3, 2)),
            variants=[],
            n_classes=2,
        )
