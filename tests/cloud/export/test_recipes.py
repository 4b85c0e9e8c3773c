"""The int8 recipe registry and the exporter's choice among recipes (no TensorFlow needed)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cloud.export import TARGETS
from cloud.export.build import choose
from cloud.export.gate import FloatAnswers, GateRules
from cloud.export.recipes import INT8_RECIPES, recipes_for
from cloud.export.variants import Variant

Y = np.arange(200) % 4  # validation labels; the float model is right on every row
ANSWERS = FloatAnswers(y_test=Y, test_pred=Y, all_pred=Y, labels=["a", "b", "c", "d"])


def test_every_int8_target_has_named_recipes() -> None:
    assert set(INT8_RECIPES) == {t for t in TARGETS if t.endswith("-int8")}
    for target, recipes in INT8_RECIPES.items():
        names = [r.name for r in recipes]
        assert recipes and len(set(names)) == len(names), target
        assert all(re.fullmatch(r"[a-z0-9][a-z0-9-]{1,31}", n) for n in names), names
        assert all(r.description for r in recipes)


def test_the_litert_recipes_cover_both_io_forms() -> None:
    assert {r.name for r in recipes_for("litert-int8")} >= {"int8-io", "float-io"}


def test_a_target_without_recipes_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"litert-fp32.*known: litert-int8"):
        recipes_for("litert-fp32")


def _probe(wrong: int, latency: float | None, *, failed: bool = False) -> Variant:
    """A measured candidate answering ``wrong`` validation rows wrongly."""
    v = Variant("litert-int8")
    if failed:
        v.fail("quantise", RuntimeError("converter crashed"))
        return v
    pred = Y.copy()
    pred[:wrong] = (pred[:wrong] + 1) % 4
    v.converted = object()  # type: ignore[assignment]  # only ``ok`` looks at it
    v.scores = np.eye(4, dtype=np.float32)[pred]
    v.metrics = {"accuracy": float(np.mean(pred == Y)), "latency_ms": latency}
    return v


def test_the_fastest_candidate_within_the_gate_is_kept() -> None:
    exact_slow, lossy_fast, close_fast = _probe(0, 2.0), _probe(40, 0.5), _probe(1, 1.0)
    best = choose([exact_slow, lossy_fast, close_fast], ANSWERS, GateRules())
    assert best is close_fast
    assert lossy_fast.gate["decision"] == "left out" and close_fast.included


def test_when_none_passes_the_most_accurate_is_kept_then_the_faster() -> None:
    a, b, c = _probe(50, 0.5), _probe(30, 3.0), _probe(30, 2.0)
    assert choose([a, b, c], ANSWERS, GateRules()) is c
    assert not any(p.included for p in (a, b, c))


def test_an_untimed_candidate_counts_as_slowest_and_failed_ones_never_win() -> None:
    untimed, timed, broken = _probe(0, None), _probe(0, 4.0), _probe(0, 0.1, failed=True)
    assert choose([broken, untimed, timed], ANSWERS, GateRules()) is timed
    assert choose([broken], ANSWERS, GateRules()) is None
    assert broken.gate == {}


def test_the_export_gate_rules_apply_to_candidates() -> None:
    one_wrong = _probe(1, 1.0)
    strict = GateRules(max_accuracy_drop=0.0, min_agreement=1.0, min_class_agreement=1.0)
    exact = _probe(0, 5.0)
    assert choose([one_wrong, exact], ANSWERS, strict) is exact
