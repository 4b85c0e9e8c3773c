"""Metrics per group (``edgekit train --group-column``) and the largest gap between groups.

An average can hide a group the model serves badly. For the float model and every
evaluated variant this computes, per group of the test split: the rows, accuracy with its
Wilson interval and macro-F1; then the largest accuracy gap between two groups with an
interval for the difference, so a card never presents a 10-point gap between two groups
of five rows as a finding. report.json holds the result under ``groups``; the model card
renders it (cloud/export/card_fields.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cloud.export.metrics import class_report, confusion_matrix
from cloud.export.stats import DEFAULT_CONFIDENCE, check_confidence, wilson_interval
from edge.errors import DataError

MIN_GROUP_ROWS = 10  # test rows a group needs to take part in the gap (smaller: shown only)
FLOAT_MODEL = "float"


@dataclass(frozen=True)
class GroupMetrics:
    """One group's test-split numbers for one model."""

    group: str
    n: int
    correct: int
    accuracy: float
    interval: tuple[float, float]
    macro_f1: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "n": self.n,
            "correct": self.correct,
            "accuracy": round(self.accuracy, 6),
            "interval": [round(v, 6) for v in self.interval],
            "macro_f1": round(self.macro_f1, 6),
        }


def independent_difference_interval(
    s1: int, n1: int, s2: int, n2: int, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """Interval for ``s1/n1 - s2/n2`` of two *independent* samples (two groups' rows).

    Newcombe's (1998) hybrid score interval, method 10: it combines the two Wilson intervals,
    so it keeps its coverage for small groups and accuracies near 1, where the normal
    (Wald) interval of the difference is far too narrow. The paired interval in
    cloud/export/stats.py is for two models on the *same* rows; groups are disjoint rows.
    """
    l1, u1 = wilson_interval(s1, n1, confidence)
    l2, u2 = wilson_interval(s2, n2, confidence)
    p1, p2 = s1 / n1, s2 / n2
    d = p1 - p2
    lower = d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    upper = d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return max(-1.0, lower), min(1.0, upper)


def _macro_f1_present(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Macro-F1 over the classes present among the group's labels or predictions.

    A class absent from a group has no F1 there; averaging its 0 in would punish a group
    for its class mix, not for the model's errors (scikit-learn's default does the same).
    """
    cm = confusion_matrix(y_true, y_pred, n_classes)
    present = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    f1 = class_report(cm).f1
    return float(f1[present].mean()) if present.any() else 0.0


def group_metrics(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: np.ndarray,
    n_classes: int,
    confidence: float = DEFAULT_CONFIDENCE,
) -> list[GroupMetrics]:
    """Numbers for every group with at least one row, in sorted group order."""
    y_true, y_pred, groups = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups)
    if not (len(y_true) == len(y_pred) == len(groups)):
        raise DataError(
            f"group metrics: {len(y_true)} labels, {len(y_pred)} predictions and "
            f"{len(groups)} group values must be aligned"
        )
    if len(y_true) == 0:
        raise DataError("group metrics: no rows")
    out = []
    for g in np.unique(groups):
        mask = groups == g
        t, p = y_true[mask], y_pred[mask]
        n, correct = int(mask.sum()), int((t == p).sum())
        out.append(
            GroupMetrics(
                group=str(g),
                n=n,
                correct=correct,
                accuracy=correct / n,
                interval=wilson_interval(correct, n, confidence),
                macro_f1=_macro_f1_present(t, p, n_classes),
            )
        )
    return out


def largest_gap(
    rows: Sequence[GroupMetrics],
    confidence: float = DEFAULT_CONFIDENCE,
    min_rows: int = MIN_GROUP_ROWS,
) -> dict[str, Any]:
    """The best and worst group by accuracy, their gap, its interval and a plain-words note.

    Only groups with at least ``min_rows`` test rows are compared when two or more have
    that many; otherwise all groups are, and the note says the gap is mostly noise.
    """
    pct = f"{100 * confidence:g}%"
    if len(rows) < 2:
        return {
            "best": None,
            "worst": None,
            "gap": None,
            "interval": None,
            "significant": False,
            "compared": [r.group for r in rows],
            "too_small": [],
            "note": "only one group has test rows: there is no gap to measure",
        }
    big = [r for r in rows if r.n >= min_rows]
    compared = big if len(big) >= 2 else list(rows)
    too_small = [r.group for r in rows if r not in compared]
    best = max(compared, key=lambda r: (r.accuracy, r.n))
    worst = min((r for r in compared if r is not best), key=lambda r: (r.accuracy, -r.n))
    lo, hi = independent_difference_interval(
        best.correct, best.n, worst.correct, worst.n, confidence
    )
    gap = best.accuracy - worst.accuracy
    significant = lo > 0.0
    span = f"[{100 * lo:.1f}, {100 * hi:.1f}] points"
    if gap == 0.0:
        note = (
            f"every compared group has the same accuracy ({100 * best.accuracy:.1f}%); "
            f"a gap as large as {100 * max(-lo, hi):.1f} points is still within the {pct} "
            f"interval {span}"
        )
    elif len(big) < 2:
        note = (
            f"fewer than two groups have {min_rows} or more test rows: the gap of "
            f"{100 * gap:.1f} points ({pct} interval {span}) is mostly noise"
        )
    elif significant:
        note = (
            f"'{worst.group}' is significantly worse than '{best.group}': "
            f"{100 * gap:.1f} points, {pct} interval {span}"
        )
    else:
        note = (
            f"the {pct} interval of the gap {span} includes 0: the test split cannot tell "
            f"'{best.group}' and '{worst.group}' apart"
        )
    if too_small:
        note += f"; left out of the comparison (< {min_rows} test rows): {', '.join(too_small)}"
    return {
        "best": best.group,
        "worst": worst.group,
        "gap": round(gap, 6),
        "interval": [round(lo, 6), round(hi, 6)],
        "significant": significant,
        "compared": [r.group for r in compared],
        "too_small": too_small,
        "note": note,
    }


def group_report(
    *,
    column: str,
    y_true: np.ndarray,
    groups: np.ndarray,
    float_scores: np.ndarray,
    variants: Sequence[dict[str, Any]],
    n_classes: int,
    split_counts: dict[str, dict[str, int]] | None = None,
    confidence: float = DEFAULT_CONFIDENCE,
) -> dict[str, Any]:
    """The ``groups`` block of report.json, also what the model card renders.

    ``variants`` are rows with ``target``, ``included`` and ``scores`` (the variant's test
    scores, aligned with ``y_true``); rows without scores (failed variants) are skipped.
    """
    confidence = check_confidence(confidence)
    float_scores = np.asarray(float_scores)
    if float_scores.ndim != 2 or len(float_scores) != len(y_true):
        raise DataError(
            f"group report: float scores {float_scores.shape} do not match {len(y_true)} rows"
        )
    models: dict[str, dict[str, Any]] = {}
    candidates: list[tuple[str, bool | None, np.ndarray]] = [(FLOAT_MODEL, None, float_scores)]
    for v in variants:
        scores = v.get("scores")
        if scores is not None and np.shape(scores) == float_scores.shape:
            candidates.append((str(v["target"]), bool(v.get("included")), np.asarray(scores)))
    for name, included, scores in candidates:
        rows = group_metrics(y_true, scores.argmax(axis=1), groups, n_classes, confidence)
        models[name] = {
            "included": included,
            "groups": [r.to_dict() for r in rows],
            "gap": largest_gap(rows, confidence),
        }
    test_groups = {str(g) for g in np.unique(groups)}
    all_groups = set(test_groups)
    for counts in (split_counts or {}).values():
        all_groups |= set(counts)
    return {
        "column": column,
        "split": "test",
        "confidence": confidence,
        "min_group_rows": MIN_GROUP_ROWS,
        "counts": split_counts or {},
        "absent_from_test": sorted(all_groups - test_groups),
        "models": models,
    }
