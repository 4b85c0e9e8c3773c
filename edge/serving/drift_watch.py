"""Drift alerts: which signal crossed its threshold, the features that moved (by name),
and the ``drift`` block of telemetry (docs/mqtt-api.md, "Drift").

Four signals, each a PSI against the bundle's reference.json (edge/serving/drift.py):

* ``mean``: the mean PSI over input features/channels (``input_psi``), against
  ``threshold``;
* ``feature``: the worst single feature/channel, against ``feature_threshold``. The mean
  hides one moved feature among many (one of 30 shifted by 2 std: PSI 3.4, mean 0.19), so
  the worst one alerts on its own. Its threshold is higher than ``threshold`` because the
  largest of many noisy PSIs is larger than a typical one: the noise floor in the doc;
* ``output``: the predicted-class mix (``output_psi``), against ``threshold``;
* ``confidence``: the top-1 confidence histogram (``confidence_psi``), against ``threshold``.

Everything here runs at snapshot time (one vectorised PSI pass per telemetry message);
per inference the monitor only counts (:meth:`DriftWatch.add_input`, ``add_prediction``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from edge.serving.drift import (
    ConfidenceDrift,
    InputDrift,
    OutputDrift,
    dimension_names,
    validate_reference,
)

DEFAULT_THRESHOLD = 0.2  # significant shift by standard PSI practice
DEFAULT_FEATURE_THRESHOLD = 0.3  # above the measured max-over-features noise (docs)
TOP_FEATURES = 5  # features named in telemetry: the message stays small with any width
CONFIDENCE_RESOLUTION = 0.01  # confidence differences below this are not drift
ALERT_SIGNALS = ("mean", "feature", "output", "confidence")


def check_threshold(value: float, name: str) -> float:
    """A PSI threshold: a finite number above 0 (ValueError otherwise)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number above 0, got {value!r}")
    return float(value)


def empty_block(threshold: float, feature_threshold: float) -> dict[str, Any]:
    """The drift block without a reference (or before any score): nothing to say."""
    return {
        "input_psi": None,
        "output_psi": None,
        "confidence_psi": None,
        "threshold": threshold,
        "feature_threshold": feature_threshold,
        "alert": False,
        "alert_on": [],
        "granularity": None,
        "features": [],
        "worst": None,
    }


class DriftWatch:
    """Input, output and confidence drift of one served model against its reference."""

    def __init__(
        self,
        reference: dict[str, Any],
        labels: list[str],
        window: int,
        min_samples: int,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        feature_threshold: float = DEFAULT_FEATURE_THRESHOLD,
        output_step: float | None = None,
    ) -> None:
        """``output_step``: the quantisation step of the served variant's scores (int8
        outputs), which widens the confidence resolution to two steps."""
        validate_reference(reference, labels)
        self.threshold = check_threshold(threshold, "threshold")
        self.feature_threshold = check_threshold(feature_threshold, "feature_threshold")
        self.inputs = InputDrift(reference["inputs"], window, min_samples)
        self.names = dimension_names(reference["inputs"])
        self.outputs = OutputDrift(reference["outputs"]["class_mix"], window, min_samples)
        conf = reference["outputs"].get("confidence")
        resolution = CONFIDENCE_RESOLUTION
        if output_step is not None and math.isfinite(output_step) and output_step > 0:
            resolution = max(resolution, 2.0 * output_step)
        self.confidence: ConfidenceDrift | None = None
        if conf is not None:
            self.confidence = ConfidenceDrift(conf, window, min_samples, resolution)

    def set_thresholds(self, threshold: float, feature_threshold: float) -> None:
        self.threshold = check_threshold(threshold, "threshold")
        self.feature_threshold = check_threshold(feature_threshold, "feature_threshold")

    def add_input(self, x: np.ndarray) -> bool:
        return self.inputs.add(x)

    def add_prediction(self, pred: int, confidence: float) -> None:
        """One prediction: plain Python only (runs right after the model, caches cold)."""
        self.outputs.add(pred)
        if self.confidence is not None:
            self.confidence.add(confidence)

    def block(self) -> dict[str, Any]:
        """The telemetry ``drift`` block: scores, the top features, what alerts."""
        out = empty_block(self.threshold, self.feature_threshold)
        out["granularity"] = self.inputs.granularity
        if self.inputs.ready:
            scores = self.inputs.scores()
            finite = np.isfinite(scores)
            if finite.any():
                out["input_psi"] = float(scores[finite].mean())
                order = np.argsort(-np.where(finite, scores, -np.inf), kind="stable")
                top = [int(j) for j in order[:TOP_FEATURES] if finite[j]]
                out["features"] = [{"name": self.names[j], "psi": float(scores[j])} for j in top]
                out["worst"] = dict(out["features"][0])
        out["output_psi"] = self.outputs.score()
        if self.confidence is not None:
            out["confidence_psi"] = self.confidence.score()
        crossed = {
            "mean": out["input_psi"],
            "feature": out["worst"]["psi"] if out["worst"] else None,
            "output": out["output_psi"],
            "confidence": out["confidence_psi"],
        }
        limits = {"feature": self.feature_threshold}
        out["alert_on"] = [
            name
            for name in ALERT_SIGNALS
            if crossed[name] is not None and crossed[name] > limits.get(name, self.threshold)
        ]
        out["alert"] = bool(out["alert_on"])
        return out
