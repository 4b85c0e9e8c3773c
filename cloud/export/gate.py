"""The accuracy gate: which variants may ship.

A variant is left out when it failed to convert or run, or when its test accuracy is more
than ``max_drop`` percentage points below the float Keras model's. The reason is written
in words, because it ends up in report.json and the model card for a human to read.
"""

from __future__ import annotations

import math

from cloud.export.variants import Variant
from edge.errors import ConfigError

DEFAULT_MAX_ACCURACY_DROP = 1.0


def check_threshold(max_drop: float) -> float:
    """A gate must be a finite number of points (negative demands an improvement)."""
    if not isinstance(max_drop, (int, float)) or not math.isfinite(max_drop):
        raise ConfigError(f"--max-accuracy-drop must be a finite number, got {max_drop!r}")
    return float(max_drop)


def apply_gate(variants: list[Variant], float_accuracy: float, max_drop: float) -> list[Variant]:
    """Set ``included``/``reason`` on every variant; return the ones that pass."""
    max_drop = check_threshold(max_drop)
    passed: list[Variant] = []
    for v in variants:
        if not v.ok:
            v.included = False
            v.reason = f"failed during {v.failed_step or 'export'}: {v.error}"
            continue
        accuracy = v.metrics.get("accuracy")
        if accuracy is None:
            v.included, v.reason = False, "not evaluated"
            continue
        drop = round(100.0 * (float_accuracy - accuracy), 4)
        v.metrics["accuracy_drop_points"] = drop
        if drop > max_drop:
            v.included = False
            v.reason = (
                f"accuracy {100 * accuracy:.2f}% is {drop:.2f} points below the float model's "
                f"{100 * float_accuracy:.2f}% (gate: at most {max_drop:g} points)"
            )
        else:
            v.included, v.reason = True, ""
            passed.append(v)
    return passed
