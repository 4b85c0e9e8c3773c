"""The champion check: before a version ships, the hub runs it and the version the devices
run now (the champion) on the labeled field data, in its own process (LiteRT or ONNX
Runtime, no TensorFlow), and compares accuracy with Wilson intervals, per class and their
agreement, next to both bundles' own test metrics. ``rule`` documents the decision;
a ``worse`` candidate's rollout is refused unless forced (cloud/hub/http/rollout_routes.py).
"""

from cloud.hub.champion.compare import Comparison, Contender, compare
from cloud.hub.champion.evaluate import FieldSample, raw_input
from cloud.hub.champion.rule import DECISIONS, MIN_FIELD_SAMPLES, TEST_MARGIN, decide, wilson
from cloud.hub.champion.service import (
    check,
    comparison_json,
    decisions,
    field_samples,
    find_champion,
    latest,
    record,
    test_accuracy,
    trained_on,
)

__all__ = [
    "DECISIONS",
    "MIN_FIELD_SAMPLES",
    "TEST_MARGIN",
    "Comparison",
    "Contender",
    "FieldSample",
    "check",
    "compare",
    "comparison_json",
    "decide",
    "decisions",
    "field_samples",
    "find_champion",
    "latest",
    "raw_input",
    "record",
    "test_accuracy",
    "trained_on",
    "wilson",
]
