"""The golden set: what a device runs before it activates a bundle (the self-test).

A few test-split samples (model-domain inputs, stratified over classes so every label is
exercised), the float Keras model's scores for them, and their labels. Tolerances are
measured, not guessed: every variant that passed the gate is run on the golden inputs with
its edge backend, and *each variant* gets its own tolerance with a margin above its own
deviation (``Artifact.tolerance``), so an fp32 variant that measured 0.000 is held to the
floor, not to the 0.18 an int8 variant needs: every shipped variant passes on a device
while a broken one (wrong preprocessing, corrupt weights) does not. The shared
``golden.tolerance`` (margin above the worst variant) stays for agents that predate the
per-variant field.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

DEFAULT_GOLDEN_SIZE = 32
MAE_MARGIN = 2.0  # tolerance = MAE_MARGIN x worst mean-abs-error seen ...
MAE_FLOOR = 0.005  # ... but never tighter than this (other CPUs round differently)
AGREEMENT_SLACK = 2  # samples whose arg-max may flip on a device beyond the worst seen


def pick_golden(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` samples, round-robin over classes in a seeded order."""
    rng = np.random.default_rng(seed)
    pools = [list(rng.permutation(np.flatnonzero(y == c))) for c in np.unique(y)]
    picked: list[int] = []
    while len(picked) < min(n, len(y)):
        for pool in pools:
            if pool and len(picked) < n:
                picked.append(int(pool.pop()))
    return np.array(sorted(picked), dtype=np.int64)


def deviation(scores: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """How far a variant's golden scores are from the float model's (self-test metrics)."""
    diff = np.abs(scores.astype(np.float64) - reference.astype(np.float64))
    return {
        "mean_abs_error": float(diff.mean()),
        "max_abs_error": float(diff.max()),
        "top1_agreement": float(np.mean(scores.argmax(1) == reference.argmax(1))),
    }


def _round_up(value: float, digits: int = 2) -> float:
    """Round up to ``digits`` significant digits, so the recorded number is readable."""
    if value <= 0:
        return 0.0
    scale = 10 ** (digits - 1 - math.floor(math.log10(value)))
    return math.ceil(value * scale) / scale


def _tolerance_for(mae: float, agreement: float, n: int) -> dict[str, float]:
    return {
        "max_mean_abs_error": _round_up(max(MAE_MARGIN * mae, MAE_FLOOR)),
        "min_top1_agreement": round(max(0.0, agreement - AGREEMENT_SLACK / max(n, 1)), 4),
    }


def tolerance(measured: dict[str, dict[str, float]], n: int) -> dict[str, float]:
    """The shared tolerance: margin above the worst deviation of any shipped variant (what
    agents without per-variant tolerances apply to every variant)."""
    worst_mae = max((m["mean_abs_error"] for m in measured.values()), default=0.0)
    worst_agree = min((m["top1_agreement"] for m in measured.values()), default=1.0)
    return _tolerance_for(worst_mae, worst_agree, n)


def variant_tolerances(
    measured: dict[str, dict[str, float]], n: int
) -> dict[str, dict[str, float]]:
    """Each variant's own tolerance: the same margin and floor above its own deviation."""
    return {
        target: _tolerance_for(m["mean_abs_error"], m["top1_agreement"], n)
        for target, m in measured.items()
    }


def summary(measured: dict[str, dict[str, float]], tol: dict[str, float], n: int) -> dict[str, Any]:
    """The golden block of report.json: size, the shared tolerance, what each variant
    measured and the tolerance each is held to on a device."""
    return {
        "size": n,
        "tolerance": tol,
        "measured": measured,
        "variant_tolerance": variant_tolerances(measured, n),
    }
