"""Intervals in cloud/export/stats.py: closed forms, invariants, coverage and bad input."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.export.stats import (
    _tango_statistic,
    bootstrap_interval,
    check_confidence,
    paired_difference_interval,
    wilson_interval,
)

Z95 = 1.959963984540054


def wilson_closed_form(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@st.composite
def counts(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.integers(1, 2000))
    return draw(st.integers(0, n)), n


@st.composite
def paired(draw: st.DrawFn) -> tuple[int, int, int]:
    n = draw(st.integers(1, 2000))
    b = draw(st.integers(0, n))
    return b, draw(st.integers(0, n - b)), n


@settings(deadline=None)  # the first call imports scipy
@given(counts())
def test_wilson_matches_the_closed_form_and_brackets_the_estimate(kn: tuple[int, int]) -> None:
    k, n = kn
    lo, hi = wilson_interval(k, n)
    ref_lo, ref_hi = wilson_closed_form(k, n)
    assert lo == pytest.approx(max(0.0, ref_lo), abs=1e-9)
    assert hi == pytest.approx(min(1.0, ref_hi), abs=1e-9)
    assert 0.0 <= lo <= k / n <= hi <= 1.0


def test_wilson_is_wider_for_fewer_samples_and_higher_confidence() -> None:
    assert np.diff(wilson_interval(68, 69))[0] > np.diff(wilson_interval(680, 690))[0]
    w95 = np.diff(wilson_interval(60, 69))[0]
    assert np.diff(wilson_interval(60, 69, confidence=0.99))[0] > w95
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(10, 10)[0] < 1.0  # never a zero-width interval at the edge


@settings(max_examples=300, deadline=None)
@given(paired())
def test_paired_interval_contains_the_estimate_and_inverts_the_score_test(
    bcn: tuple[int, int, int],
) -> None:
    b, c, n = bcn
    lo, hi = paired_difference_interval(b, c, n)
    assert -1.0 <= lo <= (b - c) / n <= hi <= 1.0
    assert lo < hi
    # Each finite bound is where the score statistic crosses +-z.
    if lo > -1.0:
        assert _tango_statistic(lo, b, c, n) == pytest.approx(Z95, abs=1e-6)
    if hi < 1.0:
        assert _tango_statistic(hi, b, c, n) == pytest.approx(-Z95, abs=1e-6)
    # Swapping the two classifiers mirrors the interval.
    mlo, mhi = paired_difference_interval(c, b, n)
    assert (mlo, mhi) == pytest.approx((-hi, -lo), abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(paired())
def test_paired_interval_excludes_zero_exactly_when_mcnemar_rejects(
    bcn: tuple[int, int, int],
) -> None:
    b, c, n = bcn
    if b + c == 0:
        return
    lo, hi = paired_difference_interval(b, c, n)
    mcnemar = abs(b - c) / math.sqrt(b + c)
    if abs(mcnemar - Z95) > 1e-6:
        assert (lo <= 0.0 <= hi) == (mcnemar < Z95)


def test_paired_interval_known_values() -> None:
    # No discordant rows: Tango's interval is +-z^2 / (n + z^2), never zero width.
    half = Z95**2 / (69 + Z95**2)
    assert paired_difference_interval(0, 0, 69) == pytest.approx((-half, half))
    # All rows discordant one way: the lower bound is (n - z^2) / (n + z^2).
    assert paired_difference_interval(69, 0, 69) == pytest.approx(
        ((69 - Z95**2) / (69 + Z95**2), 1.0)
    )
    # One changed answer out of 69 is not a significant drop of even 1 point.
    lo, hi = paired_difference_interval(1, 0, 69)
    assert lo < 0.0 < 0.01 < hi


def test_paired_interval_covers_the_true_difference_about_95_percent() -> None:
    rng = np.random.default_rng(7)
    n, p_b, p_c, runs = 69, 0.04, 0.01, 2000
    cells = rng.multinomial(n, [p_b, p_c, 1 - p_b - p_c], size=runs)
    covered = 0
    for b, c, _ in cells:
        lo, hi = paired_difference_interval(int(b), int(c), n)
        covered += lo <= p_b - p_c <= hi
    assert 0.93 <= covered / runs <= 0.985


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: wilson_interval(0, 0), "at least 1"),
        (lambda: wilson_interval(5, 4), "cannot exceed"),
        (lambda: wilson_interval(-1, 4), "negative"),
        (lambda: wilson_interval(1.5, 4), "integer"),  # type: ignore[arg-type]
        (lambda: wilson_interval(True, 4), "integer"),
        (lambda: wilson_interval(1, 4, confidence=1.0), "between 0 and 1"),
        (lambda: wilson_interval(1, 4, confidence=float("nan")), "between 0 and 1"),
        (lambda: paired_difference_interval(3, 2, 4), re.escape("b + c = 5 cannot exceed n (4)")),
        (lambda: paired_difference_interval(0, 0, 0), "at least 1"),
        (lambda: paired_difference_interval(0, -1, 3), "negative"),
        (lambda: paired_difference_interval(0, 0, 3, confidence=0), "between 0 and 1"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(
    call: Callable[[], object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_numpy_integers_are_counts() -> None:
    assert wilson_interval(np.int64(3), np.int64(4)) == wilson_interval(3, 4)
    assert check_confidence(0.9) == 0.9


def test_bootstrap_is_seeded_and_covers_the_mean() -> None:
    x = np.random.default_rng(1).normal(5.0, 1.0, size=200)
    lo, hi = bootstrap_interval(np.mean, x, n_boot=500, seed=3)
    assert lo < 5.0 < hi and hi - lo < 0.5
    assert bootstrap_interval(np.mean, x, n_boot=500, seed=3) == (lo, hi)
    assert bootstrap_interval(np.mean, x, n_boot=500, seed=4) != (lo, hi)


def test_bootstrap_resamples_rows_of_all_arrays_together() -> None:
    y = np.arange(50) % 2
    # Paired rows stay paired: accuracy of a perfect copy is 1 on every resample.
    assert bootstrap_interval(lambda a, b: float(np.mean(a == b)), y, y.copy()) == (1.0, 1.0)


def test_bootstrap_skips_undefined_resamples_and_refuses_mostly_undefined() -> None:
    y = np.array([0] * 29 + [1])

    def needs_both(a: np.ndarray) -> float:
        return float(a.mean()) if 0 < a.sum() < len(a) else math.nan

    lo, hi = bootstrap_interval(needs_both, y, n_boot=200)
    assert 0.0 < lo <= hi
    with pytest.raises(ValueError, match="undefined"):
        bootstrap_interval(lambda a: math.nan, y, n_boot=50)


@pytest.mark.parametrize(
    ("kwargs", "arrays", "message"),
    [
        ({"n_boot": 5}, (np.ones(3),), "n_boot"),
        ({}, (), "at least one array"),
        ({}, (np.ones(0),), "at least one row"),
        ({}, (np.ones(3), np.ones(4)), "same length"),
        ({"confidence": 2.0}, (np.ones(3),), "between 0 and 1"),
    ],
)
def test_bootstrap_bad_input(
    kwargs: dict[str, Any], arrays: tuple[np.ndarray, ...], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap_interval(np.mean, *arrays, **kwargs)
