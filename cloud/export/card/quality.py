"""How good one set of scores is on the test split, with intervals: the card's headline.

Test splits of small tables hold a few dozen rows, where one row moves accuracy by several
points; every headline number therefore carries a 95 % interval. Accuracy gets Wilson's
score interval (exact enough for small n and shares near 1); macro-F1, ECE and, for two
classes, ROC-AUC a seeded percentile bootstrap over the test rows (1,000 resamples).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cloud.export import binary
from cloud.export.card.text import num, num_ci, pct_ci, table
from cloud.export.metrics import Evaluation, evaluate, expected_calibration_error, macro_f1
from cloud.export.stats import bootstrap_interval, wilson_interval

ECE_BINS = 15
BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95

Interval = tuple[float, float]


@dataclass(frozen=True)
class Quality:
    """One model's (or variant's) test-split numbers with their 95 % intervals."""

    ev: Evaluation
    n: int
    accuracy_ci: Interval
    macro_f1: float
    macro_f1_ci: Interval | None
    ece_ci: Interval | None
    auc: float | None = None  # two-class tasks with both classes in the test split
    auc_ci: Interval | None = None

    @property
    def accuracy(self) -> float:
        return self.ev.accuracy


def _boot(stat: Callable[..., float], *arrays: np.ndarray, seed: int) -> Interval | None:
    try:
        return bootstrap_interval(
            stat,
            *arrays,
            n_boot=BOOTSTRAP_RESAMPLES,
            seed=seed,
            confidence=CONFIDENCE,
        )
    except ValueError:  # statistic undefined on most resamples (e.g. one test row)
        return None


def measure(scores: np.ndarray, y_true: np.ndarray, seed: int = 0) -> Quality:
    """Evaluate ``scores`` against ``y_true`` and attach the intervals."""
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y_true, dtype=np.int64)
    ev = evaluate(scores, y, ECE_BINS)
    k = scores.shape[1]
    pred = scores.argmax(axis=1)
    n = len(y)
    correct = int(np.sum(pred == y))
    auc = auc_ci = None
    if k == 2 and 0 < int(y.sum()) < n:
        auc = binary.roc_auc(y, scores[:, 1])
        auc_ci = _boot(binary.auc_or_nan, y, scores[:, 1], seed=seed)
    return Quality(
        ev=ev,
        n=n,
        accuracy_ci=wilson_interval(correct, n, CONFIDENCE),
        macro_f1=ev.classes.macro_f1(),
        macro_f1_ci=_boot(lambda t, p: macro_f1(t, p, k), y, pred, seed=seed),
        ece_ci=_boot(lambda s, t: expected_calibration_error(s, t, ECE_BINS), scores, y, seed=seed),
        auc=auc,
        auc_ci=auc_ci,
    )


def performance(q: Quality, labels: list[str]) -> str:
    c = q.ev.classes
    rows = [
        (lbl, f"{c.precision[i]:.3f}", f"{c.recall[i]:.3f}", f"{c.f1[i]:.3f}", int(c.support[i]))
        for i, lbl in enumerate(labels)
    ]
    worst = int(np.argmin(c.f1))
    auc = "" if q.auc is None else f", ROC-AUC {num_ci(q.auc, q.auc_ci)}"
    return (
        f"## Performance (float model, test split)\n\nOn {q.n} test samples: accuracy "
        f"**{pct_ci(q.accuracy, q.accuracy_ci)}**, macro F1 {num_ci(q.macro_f1, q.macro_f1_ci)}, "
        f"weighted F1 {c.weighted_f1():.3f}{auc}. Brackets are 95 % intervals (accuracy: "
        "Wilson; macro F1 and ROC-AUC: bootstrap over test rows): another test split of the "
        "same size could land anywhere inside them. "
        f"Weakest class: `{labels[worst]}` (F1 {c.f1[worst]:.3f}).\n\n"
        + table(("class", "precision", "recall", "F1", "support"), rows)
    )


def confusion(ev: Evaluation, labels: list[str], png: str) -> str:
    cm = ev.confusion
    text = "## Confusion matrix\n\nRows are the true class, columns the predicted one.\n\n"
    if len(labels) <= 20:
        rows = [[f"**{lbl}**", *(int(v) for v in cm[i])] for i, lbl in enumerate(labels)]
        text += table(["true \\ predicted", *labels], rows) + "\n\n"
    off = cm.copy()
    np.fill_diagonal(off, 0)
    if off.sum():
        i, j = np.unravel_index(int(off.argmax()), off.shape)
        text += (
            f"Most frequent confusion: `{labels[i]}` taken for `{labels[j]}` "
            f"({int(off[i, j])} times).\n\n"
        )
    return text + f"![confusion matrix](charts/{png})"


def calibration(q: Quality, png: str) -> str:
    ev = q.ev
    rel = ev.calibration
    filled = rel.counts > 0
    mean_conf = float((rel.confidence[filled] * rel.counts[filled]).sum() / rel.counts.sum())
    gap = mean_conf - ev.accuracy
    tendency = (
        "over-confident"
        if gap > 0.01
        else "under-confident"
        if gap < -0.01
        else "well matched to its accuracy on average"
    )
    return (
        f"## Calibration\n\nExpected calibration error (ECE, {len(rel.counts)} equal-width bins "
        f"of top-1 confidence): **{num_ci(ev.ece, q.ece_ci, 4)}** (0 = confidences equal "
        f"accuracy; on few rows ECE is biased upwards, so read the interval). Mean confidence "
        f"{mean_conf:.3f} vs accuracy {ev.accuracy:.3f}: the model is {tendency}. "
        'Thresholds on the score (e.g. "act only above 0.9") are only as trustworthy as '
        'this diagram. The calibration of every shipped variant is under "Quality of each '
        f'variant".\n\n![reliability diagram](charts/{png})'
    )


def headline_rows(q: Quality) -> list[tuple[str, str]]:
    """Header-table rows of the float model's headline numbers."""
    rows = [
        ("test accuracy (float model)", pct_ci(q.accuracy, q.accuracy_ci)),
        ("macro F1", num_ci(q.macro_f1, q.macro_f1_ci)),
    ]
    if q.auc is not None:
        rows.append(("ROC-AUC", num_ci(q.auc, q.auc_ci)))
    rows += [
        ("expected calibration error", num(q.ev.ece, ".3f")),
        ("test samples", str(q.n)),
    ]
    return rows
