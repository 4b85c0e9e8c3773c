"""The card's two-class section: ROC and precision-recall curves and a threshold table.

Shown only for two-class models. The positive class is the second label (``labels[1]``,
scikit-learn's ``pos_label=1`` convention for sorted labels); its score is thresholded.
The model's own answer (argmax of two softmax scores) is the threshold 0.5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cloud.export import binary, charts
from cloud.export.card.quality import BOOTSTRAP_RESAMPLES, CONFIDENCE, Quality
from cloud.export.card.text import num_ci, pct, table
from cloud.export.stats import bootstrap_interval

ROC_PNG = "roc.png"
PR_PNG = "precision_recall.png"


def two_class_section(
    q: Quality,
    labels: list[str],
    y_true: np.ndarray,
    float_scores: np.ndarray,
    chart_dir: Path,
    seed: int,
) -> tuple[str, list[Path]]:
    """Markdown and charts; ("", []) for a model with more than two classes."""
    if len(labels) != 2:
        return "", []
    y = np.asarray(y_true, dtype=np.int64)
    s = np.asarray(float_scores, dtype=np.float64)[:, 1]
    pos, neg = labels[1], labels[0]
    head = f"## Two-class analysis: ROC, precision-recall, thresholds (positive class `{pos}`)\n\n"
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == len(y) or q.auc is None:
        return head + (
            f"The test split holds only one class ({n_pos} of {len(y)} rows are `{pos}`): "
            "ROC and precision-recall cannot be computed."
        ), []
    ap = binary.average_precision(y, s)
    try:
        ap_ci: tuple[float, float] | None = bootstrap_interval(
            binary.ap_or_nan, y, s, n_boot=BOOTSTRAP_RESAMPLES, seed=seed, confidence=CONFIDENCE
        )
    except ValueError:
        ap_ci = None
    best = binary.best_f1_threshold(y, s)
    rows = binary.threshold_table(y, s, [*binary.TABLE_THRESHOLDS, best])
    at_default = binary.at_threshold(y, s, binary.DEFAULT_THRESHOLD)
    at_best = binary.at_threshold(y, s, best)
    roc = binary.roc_curve(y, s)
    pr = binary.precision_recall_curve(y, s)
    marks_roc = {
        "default 0.5": (at_default.fpr, at_default.recall),
        f"best F1 ({best:.3g})": (at_best.fpr, at_best.recall),
    }
    marks_pr = {
        "default 0.5": (at_default.recall, at_default.precision),
        f"best F1 ({best:.3g})": (at_best.recall, at_best.precision),
    }
    base_rate = n_pos / len(y)
    roc_png = charts.roc_png(roc.x, roc.y, float(q.auc), chart_dir / ROC_PNG, marks_roc)
    pr_png = charts.pr_png(pr.x, pr.y, ap, base_rate, chart_dir / PR_PNG, marks_pr)
    body = []
    for r in rows:
        notes = []
        if r.threshold == binary.DEFAULT_THRESHOLD:
            notes.append("**default** (the model's answer)")
        if r.threshold == best:
            notes.append("**best F1** on the test split")
        body.append(
            (
                f"{r.threshold:.3g}",
                f"{r.precision:.3f}",
                f"{r.recall:.3f}",
                f"{r.f1:.3f}",
                f"{r.fpr:.3f}",
                f"{r.flagged} / {len(y)}",
                ", ".join(notes),
            )
        )
    text = (
        head + f"`{pos}` is {n_pos} of {len(y)} test rows ({pct(base_rate, 1)}); `{neg}` the "
        f"rest. ROC-AUC **{num_ci(q.auc, q.auc_ci)}** (chance of ranking a random `{pos}` "
        f"row above a random `{neg}` row; 0.5 = chance), average precision "
        f"**{num_ci(ap, ap_ci)}** (area under the precision-recall curve; no skill = "
        f"{base_rate:.3f}); brackets are 95 % bootstrap intervals.\n\n"
        f"Predicting `{pos}` when its score is at least the threshold gives, on the test "
        "split (precision = share of flagged rows that are positive, recall = share of "
        "positives flagged, FPR = share of negatives flagged):\n\n"
        + table(
            ("threshold", "precision", "recall", "F1", "FPR", "flagged", "note"),
            body,
        )
        + "\n\nThe best-F1 threshold is chosen on the same rows it is scored on, so it is "
        "optimistic: confirm it on your own data before an application applies it to the "
        f"`{pos}` score.\n\n"
        f"![ROC curve](charts/{roc_png.name}) ![precision-recall curve](charts/{pr_png.name})"
    )
    return text, [roc_png, pr_png]
