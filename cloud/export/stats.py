"""Confidence intervals for the numbers that decide what ships and what a card claims.

Test splits of small tables hold 24-90 rows, where one row moves accuracy by 1-4 points;
a point estimate alone cannot tell a broken variant from noise. Three intervals:

- ``wilson_interval``: a binomial proportion (accuracy, agreement). Wilson's score
  interval keeps close to its nominal coverage for small n and proportions near 0 or 1,
  where the textbook normal (Wald) interval collapses to a width of zero.
- ``paired_difference_interval``: the accuracy difference of two classifiers judged on the
  *same* samples. Only the discordant rows carry information about the difference (b: the
  first right and the second wrong, c: the reverse), so this is Tango's (1998) score
  interval, which needs only b, c and n: it inverts the score test of H0: p_b - p_c = d
  (at d = 0 it is McNemar's test), stays inside [-1, 1], and is not degenerate when
  b = c = 0. Treating the two accuracies as independent samples would ignore the pairing
  and give wider intervals.
- ``bootstrap_interval``: a seeded percentile bootstrap for any other statistic
  (macro-F1, ROC-AUC), resampling rows of all arrays together.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral
from typing import Any

import numpy as np

# scipy is imported inside the functions: the CLI reads this package's defaults at start-up,
# and scipy.stats alone would add most of a second to every `edgekit` command.

DEFAULT_CONFIDENCE = 0.95
Count = int | np.integer[Any]  # numpy counts (np.sum of a boolean mask) are accepted


def check_confidence(confidence: float) -> float:
    """A confidence level strictly between 0 and 1 (0.95 for a 95 % interval)."""
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, (int, float))
        or not math.isfinite(confidence)
        or not 0.0 < confidence < 1.0
    ):
        raise ValueError(
            f"confidence must be a number strictly between 0 and 1, got {confidence!r}"
        )
    return float(confidence)


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer count, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {value}")
    return int(value)


def _sample_size(n: Any) -> int:
    n = _count(n, "n")
    if n == 0:
        raise ValueError("n must be at least 1: an interval needs at least one sample")
    return n


def wilson_interval(
    successes: Count, n: Count, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """Two-sided Wilson score interval for ``successes`` out of ``n``."""
    n = _sample_size(n)
    successes = _count(successes, "successes")
    if successes > n:
        raise ValueError(f"successes ({successes}) cannot exceed n ({n})")
    from scipy.stats import binomtest

    ci = binomtest(successes, n).proportion_ci(
        confidence_level=check_confidence(confidence), method="wilson"
    )
    return max(0.0, float(ci.low)), min(1.0, float(ci.high))


def _tango_statistic(delta: float, b: int, c: int, n: int) -> float:
    """Tango's score statistic for H0: (b - c) / n has expectation ``delta``.

    The variance uses the maximum-likelihood estimate of the c-cell probability
    restricted to the hypothesis (the root of a quadratic, Tango 1998, eq. 3).
    """
    a_ = 2.0 * n
    b_ = -b - c + (2.0 * n - b + c) * delta
    c_ = -c * delta * (1.0 - delta)
    q21 = (math.sqrt(max(0.0, b_ * b_ - 4.0 * a_ * c_)) - b_) / (2.0 * a_)
    variance = n * (2.0 * q21 + delta * (1.0 - delta))
    numerator = b - c - n * delta
    if variance <= 0.0:
        return math.copysign(math.inf, numerator) if numerator else 0.0
    return numerator / math.sqrt(variance)


def paired_difference_interval(
    b: Count, c: Count, n: Count, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[float, float]:
    """Interval for ``acc_first - acc_second`` of two classifiers on the same n samples.

    ``b`` = samples the first gets right and the second wrong, ``c`` = the reverse; the
    point estimate is ``(b - c) / n``. Tango's score interval (see the module docstring).
    """
    n = _sample_size(n)
    b, c = _count(b, "b"), _count(c, "c")
    if b + c > n:
        raise ValueError(f"discordant counts b + c = {b + c} cannot exceed n ({n})")
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + check_confidence(confidence) / 2.0))
    edge = 1.0 - 1e-12
    t = _tango_statistic
    # T decreases in delta: the lower bound solves T = z, the upper bound T = -z.
    point = (b - c) / n
    lower = -1.0 if c == n or t(-edge, b, c, n) <= z else _root(t, z, -edge, point, b, c, n)
    upper = 1.0 if b == n or t(edge, b, c, n) >= -z else _root(t, -z, point, edge, b, c, n)
    return max(-1.0, lower), min(1.0, upper)


def _root(
    t: Callable[[float, int, int, int], float], level: float, lo: float, hi: float, *counts: int
) -> float:
    from scipy import optimize

    if lo == hi:
        return lo
    return float(optimize.brentq(lambda d: t(d, *counts) - level, lo, hi, xtol=1e-12))


def bootstrap_interval(
    stat_fn: Callable[..., float],
    *arrays: np.ndarray,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = DEFAULT_CONFIDENCE,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat_fn(*arrays)``, rows resampled together.

    Resamples where the statistic is undefined (NaN, e.g. ROC-AUC on a resample with one
    class) are skipped; at least half must be defined, otherwise ValueError. Seeded, so a
    model card is reproducible.
    """
    confidence = check_confidence(confidence)
    if isinstance(n_boot, bool) or not isinstance(n_boot, Integral) or n_boot < 10:
        raise ValueError(f"n_boot must be an integer of at least 10, got {n_boot!r}")
    if not arrays:
        raise ValueError("bootstrap_interval needs at least one array")
    data = [np.asarray(a) for a in arrays]
    n = len(data[0])
    if n == 0:
        raise ValueError("bootstrap_interval needs at least one row")
    if any(len(a) != n for a in data):
        raise ValueError(f"arrays must have the same length, got {[len(a) for a in data]}")
    rng = np.random.default_rng(seed)
    values = np.empty(int(n_boot), dtype=np.float64)
    for i in range(int(n_boot)):
        idx = rng.integers(0, n, size=n)
        values[i] = float(stat_fn(*(a[idx] for a in data)))
    defined = values[np.isfinite(values)]
    if len(defined) < n_boot / 2:
        raise ValueError(
            f"the statistic was undefined on {n_boot - len(defined)} of {n_boot} resamples"
        )
    tail = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(defined, [tail, 100.0 - tail])
    return float(lo), float(hi)
