"""The champion check's decision rule and statistics, without a hub."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.hub.champion import MIN_FIELD_SAMPLES, TEST_MARGIN, decide, wilson
from cloud.hub.champion.rule import field_block


@settings(deadline=None, max_examples=200)
@given(st.integers(1, 2000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_wilson_matches_scipy(kn: tuple[int, int]) -> None:
    from scipy.stats import binomtest

    k, n = kn
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson(k, n)
    assert low == pytest.approx(max(0.0, ci.low), abs=1e-9)
    assert high == pytest.approx(min(1.0, ci.high), abs=1e-9)


@pytest.mark.parametrize("k, n", [(0, 0), (-1, 5), (6, 5)])
def test_wilson_refuses_impossible_counts(k: int, n: int) -> None:
    with pytest.raises(ValueError):
        wilson(k, n)


def block(cand_correct: int, champ_correct: int, n: int) -> dict[str, object]:
    labels = ["a"] * n
    cand = ["a"] * cand_correct + ["b"] * (n - cand_correct)
    champ = ["a"] * champ_correct + ["b"] * (n - champ_correct)
    return field_block(labels, cand, champ, ["d1"] * n)


def test_field_block_counts_per_class_agreement_and_devices() -> None:
    b = field_block(["1", "1", "2", "2"], ["1", "2", "2", "2"], ["1", "1", "1", "2"],
                    ["d1", "d2", "d2", "d2"])  # fmt: skip
    assert b["n"] == 4
    assert b["candidate"]["correct"] == 3 and b["champion"]["correct"] == 3
    assert b["agreement"]["correct"] == 2
    assert b["per_class"] == {"1": {"n": 2, "candidate": 0.5, "champion": 1.0},
                              "2": {"n": 2, "candidate": 1.0, "champion": 0.5}}  # fmt: skip
    assert b["by_device"] == {"d1": 1, "d2": 3}


def test_field_data_decides_with_enough_samples() -> None:
    n = 200
    assert decide(block(20, 190, n), 0.99, 0.99)[0] == "worse"  # field beats test metrics
    assert decide(block(198, 150, n), 0.5, 0.99)[0] == "better"
    assert decide(block(185, 188, n), 0.99, 0.99)[0] == "similar"


def test_worse_needs_the_upper_bound_below_the_champion() -> None:
    n = 100
    _low, high = wilson(85, n)
    assert high > 0.90  # 85/100 could still be 90 %: not clearly worse than a 90 % champion
    assert decide(block(85, 90, n), None, None)[0] == "similar"
    assert decide(block(70, 90, n), None, None)[0] == "worse"


def test_few_field_samples_fall_back_to_test_metrics() -> None:
    few = block(0, MIN_FIELD_SAMPLES - 1, MIN_FIELD_SAMPLES - 1)
    decision, reason = decide(few, 0.11, 0.996)
    assert decision == "worse" and "fewer than" in reason
    assert decide(None, 0.11, 0.996)[0] == "worse"  # the demo's v3 against v2
    assert decide(None, 0.996 - TEST_MARGIN + 0.001, 0.996)[0] == "similar"
    assert decide(None, 0.996 - TEST_MARGIN - 0.001, 0.996)[0] == "worse"
    assert decide(None, 0.9, 0.8)[0] == "better"


def test_unknown_without_champion_or_metrics() -> None:
    assert decide(None, 0.9, 0.9, has_champion=False)[0] == "unknown"
    assert decide(None, None, 0.9)[0] == "unknown"
    assert decide(block(1, 1, 5), 0.9, None)[0] == "unknown"
