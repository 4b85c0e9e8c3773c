"""Two-class section on breast-cancer-like data: ROC, PR, the threshold table, both charts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cloud.export import binary
from cloud.export.card import quality
from cloud.export.card.two_class import two_class_section


def _cancer_like(n: int = 114, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Scores of a decent classifier on a 37 % positive split, like breast cancer's test."""
    rng = np.random.default_rng(seed)
    y = (rng.uniform(size=n) < 0.37).astype(np.int64)
    logit = 2.5 * (2 * y - 1) + rng.normal(scale=1.6, size=n)
    p = 1 / (1 + np.exp(-logit))
    return np.stack([1 - p, p], axis=1), y


def test_binary_section_has_curves_areas_and_a_marked_threshold_table(tmp_path: Path) -> None:
    scores, y = _cancer_like()
    q = quality.measure(scores, y, seed=0)
    text, pngs = two_class_section(q, ["benign", "malignant"], y, scores, tmp_path, seed=0)
    assert {p.name for p in pngs} == {"roc.png", "precision_recall.png"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert "(positive class `malignant`)" in text
    assert f"ROC-AUC **{q.auc:.3f} [" in text
    ap = binary.average_precision(y, scores[:, 1])
    assert f"average precision **{ap:.3f} [" in text
    assert "(charts/roc.png)" in text and "(charts/precision_recall.png)" in text
    rows = [line for line in text.splitlines() if line.startswith("| 0.")]
    assert len(rows) >= 9
    default = next(r for r in rows if r.startswith("| 0.5 |"))
    assert "**default**" in default
    at_half = binary.at_threshold(y, scores[:, 1], 0.5)
    assert f"| {at_half.precision:.3f} | {at_half.recall:.3f} |" in default
    best = binary.best_f1_threshold(y, scores[:, 1])
    assert any("**best F1**" in r and r.startswith(f"| {best:.3g} |") for r in rows)
    assert "optimistic" in text


def test_not_two_classes_or_one_class_in_test(tmp_path: Path) -> None:
    scores3 = np.full((4, 3), 1 / 3)
    q3 = quality.measure(scores3, np.array([0, 1, 2, 0]))
    assert two_class_section(q3, ["a", "b", "c"], np.array([0, 1, 2, 0]), scores3, tmp_path, 0) == (
        "",
        [],
    )
    scores, _ = _cancer_like(10)
    y = np.zeros(10, dtype=np.int64)
    text, pngs = two_class_section(quality.measure(scores, y), ["n", "p"], y, scores, tmp_path, 0)
    assert "only one class" in text and pngs == []
