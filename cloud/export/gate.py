"""The gate: which variants may ship, judged with intervals rather than point estimates.

A quantised variant is compared with the float Keras model it came from, three ways:

- ``accuracy_drop``: float test accuracy minus the variant's, in points, with Tango's paired
  interval (both judged on the same rows). Left out only when the drop is *significantly*
  above the limit (the interval's lower bound is above it): on 69 test rows one changed
  answer is 1.4 points, and a point-estimate gate of 1 point would reject it on noise. A
  user who sets ``--max-accuracy-drop`` also gets the old rule: the point estimate must be
  within it too.
- ``agreement``: top-1 agreement with the float model on every input available (no labels
  needed), Wilson interval; left out when even the upper bound is below the minimum. This
  catches variants whose gains and losses cancel in accuracy but change many answers.
- ``class_agreement``: the same per class (inputs the float model assigns to it), so a
  variant that ruins one class fails even when the mean holds. Judged on the upper bound,
  so a class with three inputs cannot fail on one flip.

Reasons are written in words with the interval, because they end up in report.json and
the model card for a human to read.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from cloud.export.stats import DEFAULT_CONFIDENCE, paired_difference_interval, wilson_interval
from cloud.export.variants import Variant
from edge.errors import ConfigError

DEFAULT_MAX_ACCURACY_DROP = 1.0  # points, used statistically when the user sets none
DEFAULT_MIN_AGREEMENT = 0.98
DEFAULT_MIN_CLASS_AGREEMENT = 0.90
KEPT, LEFT_OUT = "kept", "left out"
MAX_CLASSES_NAMED = 3  # failing classes named in a reason (all are in ``per_class``)
METHODS = {
    "accuracy_drop": "float minus variant test accuracy (points), Tango's score interval for "
    "paired proportions; fails when the lower bound exceeds the limit (and, when the limit "
    "was set explicitly, when the estimate exceeds it)",
    "agreement": "top-1 agreement with the float model on all agreement inputs, Wilson score "
    "interval; fails when the upper bound is below the limit",
    "class_agreement": "agreement among the inputs the float model assigns to each class, "
    "Wilson score interval; fails when any class's upper bound is below the limit",
}


def _number(value: Any, flag: str, lo: float, hi: float, *, open_low: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value > hi or value < lo or (open_low and value == lo):
        low = "(" if open_low else "["
        raise ConfigError(f"{flag} must be a finite number in {low}{lo:g}, {hi:g}], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class GateRules:
    """The gate's thresholds; ``max_accuracy_drop=None`` means the statistical 1-point rule."""

    max_accuracy_drop: float | None = None
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    min_class_agreement: float = DEFAULT_MIN_CLASS_AGREEMENT
    confidence: float = DEFAULT_CONFIDENCE

    def checked(self) -> GateRules:
        """The same rules, validated; ConfigError names the flag that is wrong."""
        if self.max_accuracy_drop is not None:
            _number(self.max_accuracy_drop, "--max-accuracy-drop", -100.0, 100.0)
        _number(self.min_agreement, "--min-agreement", 0.0, 1.0)
        _number(self.min_class_agreement, "--min-class-agreement", 0.0, 1.0)
        _number(self.confidence, "--gate-confidence", 0.5, 0.9999, open_low=True)
        return self

    @property
    def explicit_drop(self) -> bool:
        return self.max_accuracy_drop is not None

    @property
    def drop_limit(self) -> float:
        return (
            DEFAULT_MAX_ACCURACY_DROP if self.max_accuracy_drop is None else self.max_accuracy_drop
        )

    def describe(self) -> dict[str, Any]:
        """The thresholds and confidence, for report.json's top-level ``gate`` block."""
        return {
            "confidence": self.confidence,
            "max_accuracy_drop_points": self.drop_limit,
            "max_accuracy_drop_explicit": self.explicit_drop,
            "min_agreement": self.min_agreement,
            "min_class_agreement": self.min_class_agreement,
            "methods": METHODS,
        }


@dataclass(frozen=True)
class FloatAnswers:
    """What the float model answered; every variant is judged against it.

    ``all_pred`` covers every agreement input with the test rows first, in the order the
    variants' ``pred_all`` uses.
    """

    y_test: np.ndarray
    test_pred: np.ndarray
    all_pred: np.ndarray
    labels: list[str]


def _check(
    value: float,
    interval: tuple[float, float],
    n: int,
    limit: float,
    unit: str,
    passed: bool,
    digits: int,
) -> dict[str, Any]:
    return {
        "value": round(value, digits),
        "interval": [round(interval[0], digits), round(interval[1], digits)],
        "n": n,
        "limit": limit,
        "unit": unit,
        "passed": bool(passed),
    }


def accuracy_check(pred: np.ndarray, answers: FloatAnswers, rules: GateRules) -> dict[str, Any]:
    """Paired accuracy drop on the test split, in points."""
    right_f, right_v = answers.test_pred == answers.y_test, pred == answers.y_test
    b, c, n = int(np.sum(right_f & ~right_v)), int(np.sum(right_v & ~right_f)), len(pred)
    lo, hi = paired_difference_interval(b, c, n, rules.confidence)
    drop, limit = 100.0 * (b - c) / n, rules.drop_limit
    passed = 100.0 * lo <= limit and (not rules.explicit_drop or round(drop, 4) <= limit)
    return _check(drop, (100.0 * lo, 100.0 * hi), n, limit, "points", passed, 4)


def _agreement(agree: np.ndarray, limit: float, confidence: float) -> dict[str, Any]:
    n = len(agree)
    lo, hi = wilson_interval(int(np.sum(agree)), n, confidence)
    return _check(float(np.mean(agree)), (lo, hi), n, limit, "fraction", hi >= limit, 6)


def class_check(pred_all: np.ndarray, answers: FloatAnswers, rules: GateRules) -> dict[str, Any]:
    """Per-class agreement; the headline is the class with the lowest upper bound."""
    per_class: list[dict[str, Any]] = []
    for k, label in enumerate(answers.labels):
        mask = answers.all_pred == k
        if np.any(mask):
            row = _agreement(pred_all[mask] == k, rules.min_class_agreement, rules.confidence)
            per_class.append({"class": label, **{key: row[key] for key in _CLASS_KEYS}})
    worst = min(per_class, key=lambda r: (r["interval"][1], r["value"]))
    return {
        **{key: worst[key] for key in _CLASS_KEYS},
        "limit": rules.min_class_agreement,
        "unit": "fraction",
        "passed": all(r["passed"] for r in per_class),
        "class": worst["class"],
        "per_class": per_class,
    }


_CLASS_KEYS = ("value", "interval", "n", "passed")


def _points(x: float) -> str:
    return f"{x:g} point{'' if abs(x) == 1 else 's'}"


def _inputs(n: int) -> str:
    return f"{n} input{'' if n == 1 else 's'}"


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _span(check: dict[str, Any], scale: float = 100.0) -> str:
    lo, hi = check["interval"]
    return f"[{scale * lo:.2f}, {scale * hi:.2f}]"


def _sentences(checks: dict[str, dict[str, Any]], float_acc: float, rules: GateRules) -> list[str]:
    """One sentence per failed check (or, when all pass, per check), with its interval."""
    acc, agree, cls = checks["accuracy_drop"], checks["agreement"], checks["class_agreement"]
    failed = [name for name, c in checks.items() if not c["passed"]]
    out: list[str] = []
    drop = f"{acc['value']:.2f} points {_span(acc, 1.0)} on {acc['n']} test rows"
    if "accuracy_drop" in failed:
        limit = _points(acc["limit"])
        if acc["interval"][0] > acc["limit"]:
            out.append(f"accuracy drop {drop} is significantly above {limit}")
        else:
            variant_acc = float_acc - acc["value"] / 100.0
            out.append(
                f"accuracy {_pct(variant_acc)} is {acc['value']:.2f} points below the float "
                f"model's {_pct(float_acc)} (gate: at most {limit}; interval "
                f"{_span(acc, 1.0)} on {acc['n']} test rows)"
            )
    agree_text = (
        f"agreement with float {_pct(agree['value'])} {_span(agree)} on {agree['n']} inputs"
    )
    if "agreement" in failed:
        out.append(f"{agree_text} is below {100 * agree['limit']:g}%")
    if "class_agreement" in failed:
        bad = sorted(
            (r for r in cls["per_class"] if not r["passed"]), key=lambda r: r["interval"][1]
        )
        out += [
            f"class {r['class']!r}: agreement with float {_pct(r['value'])} {_span(r)} on "
            f"{_inputs(r['n'])} is below {100 * cls['limit']:g}%"
            for r in bad[:MAX_CLASSES_NAMED]
        ]
        if len(bad) > MAX_CLASSES_NAMED:
            out.append(f"{len(bad) - MAX_CLASSES_NAMED} more class(es) below the same limit")
    if failed:
        return out
    return [
        f"accuracy drop {drop} is not significantly above {_points(rules.drop_limit)}"
        + (f" and within {rules.drop_limit:g}" if rules.explicit_drop else ""),
        agree_text,
        f"worst class {cls['class']!r} {_pct(cls['value'])} {_span(cls)} on {cls['n']} inputs",
    ]


def judge(variant: Variant, answers: FloatAnswers, rules: GateRules) -> dict[str, Any]:
    """The variant's gate block (see docs/export.md); also sets included/reason/drop."""
    if not variant.ok:
        reason = f"failed during {variant.failed_step or 'export'}: {variant.error}"
        return _verdict(variant, rules, {}, [reason])
    if variant.scores is None or variant.pred_all is None:
        return _verdict(variant, rules, {}, ["not evaluated"])
    pred = variant.scores.argmax(axis=1)
    if len(pred) != len(answers.y_test) or len(variant.pred_all) != len(answers.all_pred):
        raise ValueError(f"{variant.target}: predictions do not match the float model's rows")
    checks = {
        "accuracy_drop": accuracy_check(pred, answers, rules),
        "agreement": _agreement(
            variant.pred_all == answers.all_pred, rules.min_agreement, rules.confidence
        ),
        "class_agreement": class_check(variant.pred_all, answers, rules),
    }
    variant.metrics["accuracy_drop_points"] = checks["accuracy_drop"]["value"]
    float_acc = float(np.mean(answers.test_pred == answers.y_test))
    return _verdict(variant, rules, checks, _sentences(checks, float_acc, rules))


def _verdict(
    variant: Variant, rules: GateRules, checks: dict[str, Any], sentences: list[str]
) -> dict[str, Any]:
    variant.included = bool(checks) and all(c["passed"] for c in checks.values())
    text = "; ".join(sentences)
    variant.reason = "" if variant.included else text
    variant.gate = {
        "decision": KEPT if variant.included else LEFT_OUT,
        "reason": f"kept: {text}" if variant.included else text,
        "confidence": rules.confidence,
        "checks": checks,
    }
    return variant.gate


def apply_gate(variants: list[Variant], answers: FloatAnswers, rules: GateRules) -> list[Variant]:
    """Judge every variant (``included``, ``reason``, ``gate``); return the ones that pass."""
    rules = rules.checked()
    for v in variants:
        judge(v, answers, rules)
    return [v for v in variants if v.included]
