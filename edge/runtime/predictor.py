"""The name callers used before the public API: ``Predictor`` is :class:`edge.runtime.model.Model`.

Kept so existing callers (the fleet simulator, the exporter's evaluation, tests) keep
working; new code imports ``Model`` / ``load_model`` from ``edge`` or ``edge.runtime``.
"""

from __future__ import annotations

from edge.runtime.golden import golden_check, load_golden
from edge.runtime.model import Model
from edge.runtime.prediction import Prediction, choose_artifact

Predictor = Model

__all__ = ["Prediction", "Predictor", "choose_artifact", "golden_check", "load_golden"]
