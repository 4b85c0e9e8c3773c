"""Two-class metrics for the model card: ROC, precision-recall and a threshold table.

A binary model is deployed with a threshold on the positive class's score (the argmax of
two softmax scores is the threshold 0.5). Accuracy at that one threshold hides the
trade-off a reviewer must choose: how many positives are caught (recall) against how many
alarms are false (precision, false-positive rate). ``y_true`` is 0/1 (1 = positive class),
``score`` the positive class's score. Numbers match scikit-learn's ``roc_curve``,
``roc_auc_score``, ``precision_recall_curve`` and ``average_precision_score``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

from edge.errors import DataError

TABLE_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DEFAULT_THRESHOLD = 0.5


def _binary(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true)
    s = np.asarray(score, dtype=np.float64)
    if y.ndim != 1 or s.ndim != 1 or len(y) != len(s):
        raise DataError(
            f"binary metrics need two 1-D arrays of one length, got {y.shape}/{s.shape}"
        )
    if len(y) == 0:
        raise DataError("binary metrics need at least one sample")
    if not np.all(np.isin(y, (0, 1))):
        raise DataError("binary labels must be 0 (negative) or 1 (positive)")
    if not np.all(np.isfinite(s)):
        raise DataError("binary scores contain NaN or inf")
    return y.astype(np.int64), s


def _both_classes(y: np.ndarray, what: str) -> None:
    if y.min() == y.max():
        raise DataError(f"{what} needs both classes in the labels, got only class {int(y[0])}")


def _cumulative(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True and false positives when predicting positive for ``score >= t``, for every
    distinct score ``t`` from the highest down."""
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last].astype(np.float64)
    fps = (last + 1 - tps).astype(np.float64)
    return tps, fps, s[last]


@dataclass(frozen=True)
class Curve:
    """Points of a ROC (x = FPR, y = TPR) or PR (x = recall, y = precision) curve."""

    x: np.ndarray
    y: np.ndarray
    thresholds: np.ndarray


def roc_curve(y_true: np.ndarray, score: np.ndarray) -> Curve:
    """False-positive rate against true-positive rate, from (0, 0) at threshold +inf."""
    y, s = _binary(y_true, score)
    _both_classes(y, "a ROC curve")
    tps, fps, thr = _cumulative(y, s)
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return Curve(x=fpr, y=tpr, thresholds=np.r_[np.inf, thr])


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve = P(a random positive scores above a random negative),
    ties counted half (Mann-Whitney U / (n_pos * n_neg))."""
    y, s = _binary(y_true, score)
    _both_classes(y, "ROC-AUC")
    return _auc(y, s)


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")  # a bootstrap resample with one class: undefined, skipped
    ranks = rankdata(s)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def auc_or_nan(y_true: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC, or NaN when one class is missing (for bootstrap resamples)."""
    y, s = _binary(y_true, score)
    return _auc(y, s)


def precision_recall_curve(y_true: np.ndarray, score: np.ndarray) -> Curve:
    """Recall (x) against precision (y) for every distinct threshold, highest first,
    ending at (recall 0, precision 1) like scikit-learn (its arrays reversed)."""
    y, s = _binary(y_true, score)
    if y.sum() == 0:
        raise DataError("a precision-recall curve needs at least one positive sample")
    tps, fps, thr = _cumulative(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return Curve(x=np.r_[0.0, recall], y=np.r_[1.0, precision], thresholds=np.r_[np.inf, thr])


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """AP = sum over thresholds of (recall gained) x precision there (no interpolation)."""
    y, s = _binary(y_true, score)
    if y.sum() == 0:
        raise DataError("average precision needs at least one positive sample")
    return _ap(y, s)


def _ap(y: np.ndarray, s: np.ndarray) -> float:
    if y.sum() == 0:
        return float("nan")
    tps, fps, _ = _cumulative(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def ap_or_nan(y_true: np.ndarray, score: np.ndarray) -> float:
    """Average precision, or NaN without positives (for bootstrap resamples)."""
    y, s = _binary(y_true, score)
    return _ap(y, s)


@dataclass(frozen=True)
class ThresholdRow:
    """What predicting positive for ``score >= threshold`` does on the labelled rows."""

    threshold: float
    precision: float  # 0 when nothing is predicted positive
    recall: float
    f1: float
    fpr: float
    flagged: int  # rows predicted positive
    tp: int
    fp: int


def at_threshold(y_true: np.ndarray, score: np.ndarray, threshold: float) -> ThresholdRow:
    """Precision, recall, F1 and false-positive rate at one threshold."""
    y, s = _binary(y_true, score)
    pred = s >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / pos if pos else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return ThresholdRow(
        threshold=float(threshold),
        precision=precision,
        recall=recall,
        f1=f1,
        fpr=fp / neg if neg else 0.0,
        flagged=tp + fp,
        tp=tp,
        fp=fp,
    )


def best_f1_threshold(y_true: np.ndarray, score: np.ndarray) -> float:
    """The score threshold with the highest F1 on these rows (the lowest such one on ties).

    Chosen on the test split it is optimistic for new data; the card says so.
    """
    y, s = _binary(y_true, score)
    if y.sum() == 0:
        raise DataError("an F1-optimal threshold needs at least one positive sample")
    tps, fps, thr = _cumulative(y, s)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    best = np.flatnonzero(f1 == f1.max())[-1]  # thresholds descend: the last is the lowest
    return float(thr[best])


def threshold_table(
    y_true: np.ndarray, score: np.ndarray, thresholds: Sequence[float] = TABLE_THRESHOLDS
) -> list[ThresholdRow]:
    """One row per threshold (sorted ascending, duplicates dropped)."""
    return [at_threshold(y_true, score, t) for t in sorted(set(float(t) for t in thresholds))]
