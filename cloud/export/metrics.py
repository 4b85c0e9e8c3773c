"""Classification metrics for the model card and the variant table, in plain numpy.

scikit-learn is a training-time dependency only; the exporter evaluates every runtime
variant with these functions so the numbers in the card, the report and the manifest all
come from one implementation. ``y_true``/``y_pred`` are integer class indices; ``scores``
are ``[n, n_classes]`` probabilities (softmax outputs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.errors import DataError


def _labels(y: np.ndarray, name: str, n_classes: int | None = None) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise DataError(f"{name} must be a 1-D array of class indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError(f"{name} must hold integer class indices")
        arr = arr.astype(np.int64)
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < 0:
        raise DataError(f"{name} has a negative class index {int(arr.min())}")
    if n_classes is not None and arr.size and arr.max() >= n_classes:
        raise DataError(f"{name} has class index {int(arr.max())} but only {n_classes} classes")
    return arr


def _scores(scores: np.ndarray, name: str = "scores") -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise DataError(f"{name} must be a 2-D [samples, classes] array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{name} contain {int((~np.isfinite(arr)).sum())} NaN/inf values")
    return arr


def _same_length(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if len(a) != len(b):
        raise DataError(f"{what}: {len(a)} vs {len(b)} samples")
    if len(a) == 0:
        raise DataError(f"{what}: no samples")


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of samples whose predicted class equals the true class."""
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    _same_length(t, p, "accuracy")
    return float(np.mean(t == p))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``[n_classes, n_classes]`` counts; row = true class, column = predicted class."""
    if n_classes < 1:
        raise DataError(f"n_classes must be at least 1, got {n_classes}")
    t = _labels(y_true, "y_true", n_classes)
    p = _labels(y_pred, "y_pred", n_classes)
    _same_length(t, p, "confusion matrix")
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


@dataclass(frozen=True)
class ClassReport:
    """Per-class precision, recall, F1 and support (true samples per class).

    A class that is never predicted has precision 0 (not NaN), one with no true samples
    has recall 0, as scikit-learn does with ``zero_division=0``.
    """

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    support: np.ndarray

    def macro_f1(self) -> float:
        return float(self.f1.mean())

    def weighted_f1(self) -> float:
        total = self.support.sum()
        return float((self.f1 * self.support).sum() / total) if total else 0.0


def class_report(cm: np.ndarray) -> ClassReport:
    """Precision/recall/F1 per class from a confusion matrix (rows true, columns predicted)."""
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise DataError(f"confusion matrix must be square, got shape {cm.shape}")
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    support = cm.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    return ClassReport(precision=precision, recall=recall, f1=f1, support=support)


@dataclass(frozen=True)
class Reliability:
    """Equal-width confidence bins: the data of a reliability diagram and of the ECE.

    ``confidence[i]`` and ``accuracy[i]`` are means over the samples in bin i (NaN when the
    bin is empty); ``counts[i]`` how many samples fell there.
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    counts: np.ndarray

    @property
    def ece(self) -> float:
        """Expected calibration error: sum over bins of share * |accuracy - confidence|."""
        n = self.counts.sum()
        if n == 0:
            return 0.0
        filled = self.counts > 0
        gaps = np.abs(self.accuracy[filled] - self.confidence[filled])
        return float((gaps * self.counts[filled]).sum() / n)


def reliability(scores: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> Reliability:
    """Bin top-1 confidences into ``n_bins`` equal-width bins on [0, 1].

    Bins are right-closed ``(lo, hi]`` (the first one also takes 0) like the usual ECE
    definition (Guo et al. 2017), so a confidence of exactly 1.0 lands in the last bin.
    """
    if n_bins < 1:
        raise DataError(f"n_bins must be at least 1, got {n_bins}")
    s = _scores(scores)
    t = _labels(y_true, "y_true", s.shape[1])
    _same_length(s, t, "reliability")
    conf = s.max(axis=1)
    correct = (s.argmax(axis=1) == t).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=correct, minlength=n_bins)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_conf = np.where(counts > 0, conf_sum / np.maximum(counts, 1), np.nan)
        mean_acc = np.where(counts > 0, acc_sum / np.maximum(counts, 1), np.nan)
    return Reliability(edges=edges, confidence=mean_conf, accuracy=mean_acc, counts=counts)


def expected_calibration_error(scores: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """ECE of top-1 confidence over ``n_bins`` equal-width bins (0 = perfectly calibrated)."""
    return reliability(scores, y_true, n_bins).ece


def top1_agreement(scores_a: np.ndarray, scores_b: np.ndarray) -> float:
    """Share of samples where two models pick the same class (e.g. int8 vs float)."""
    a, b = _scores(scores_a, "scores_a"), _scores(scores_b, "scores_b")
    _same_length(a, b, "agreement")
    if a.shape[1] != b.shape[1]:
        raise DataError(f"agreement: {a.shape[1]} vs {b.shape[1]} classes")
    return float(np.mean(a.argmax(axis=1) == b.argmax(axis=1)))


def disagreements(scores_a: np.ndarray, scores_b: np.ndarray) -> np.ndarray:
    """Indices of the samples where the two models' top-1 classes differ."""
    a, b = _scores(scores_a, "scores_a"), _scores(scores_b, "scores_b")
    _same_length(a, b, "disagreements")
    return np.flatnonzero(a.argmax(axis=1) != b.argmax(axis=1))


@dataclass(frozen=True)
class Evaluation:
    """Everything the card reports about one set of scores on labelled data."""

    accuracy: float
    confusion: np.ndarray
    classes: ClassReport
    calibration: Reliability

    @property
    def ece(self) -> float:
        return self.calibration.ece


def evaluate(scores: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> Evaluation:
    """Accuracy, confusion matrix, per-class report and calibration in one call."""
    s = _scores(scores)
    t = _labels(y_true, "y_true", s.shape[1])
    _same_length(s, t, "evaluate")
    pred = s.argmax(axis=1)
    cm = confusion_matrix(t, pred, s.shape[1])
    return Evaluation(
        accuracy=float(np.mean(pred == t)),
        confusion=cm,
        classes=class_report(cm),
        calibration=reliability(s, t, n_bins),
    )


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Unweighted mean of per-class F1 over ``n_classes`` classes (a bootstrap-speed path)."""
    t = _labels(y_true, "y_true", n_classes)
    p = _labels(y_pred, "y_pred", n_classes)
    _same_length(t, p, "macro F1")
    cm = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return class_report(cm.reshape(n_classes, n_classes)).macro_f1()


LOG_LOSS_EPS = 1e-7  # float32 softmax outputs reach exact 0; clip so one row is not infinite


def sample_log_loss(scores: np.ndarray, y_true: np.ndarray) -> np.ndarray:
    """Per-sample cross-entropy ``-log(score of the true class)``, scores clipped to
    [1e-7, 1] first (so a confidently wrong row costs about 16 nats, not infinity)."""
    s = _scores(scores)
    t = _labels(y_true, "y_true", s.shape[1])
    _same_length(s, t, "log loss")
    return np.asarray(-np.log(np.clip(s[np.arange(len(t)), t], LOG_LOSS_EPS, 1.0)))


def log_loss(scores: np.ndarray, y_true: np.ndarray) -> float:
    """Mean cross-entropy of the scores on the true classes (lower is better)."""
    return float(sample_log_loss(scores, y_true).mean())
