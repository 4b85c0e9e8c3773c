"""Running a model: one backend per runtime, input preparation, the model, the self-test.

Nothing here knows about MQTT or installs; a bundle directory and a manifest are enough.
"""

from edge.runtime.backends.base import Backend, RuntimeInfo, create, runtime_info
from edge.runtime.device import describe_device, installed_runtime, runtime_loaded
from edge.runtime.golden import Tolerance, compare, golden_check, load_golden, run_golden
from edge.runtime.guard import (
    DEFAULT_GUARD_MARGIN,
    DEFAULT_GUARD_MODE,
    GUARD_MODES,
    FeatureRanges,
    RangeGuard,
)
from edge.runtime.inputs import IMAGE_SUFFIXES, ImageBytes, Preparer, load_input_file, prepare
from edge.runtime.model import MAX_STREAM_BATCH, Model, UnverifiedBundleWarning, Variant, load_model
from edge.runtime.prediction import Prediction
from edge.runtime.predictor import Predictor
from edge.runtime.selftest import SelfTestReport, self_test

__all__ = [
    "DEFAULT_GUARD_MARGIN",
    "DEFAULT_GUARD_MODE",
    "GUARD_MODES",
    "IMAGE_SUFFIXES",
    "MAX_STREAM_BATCH",
    "Backend",
    "FeatureRanges",
    "ImageBytes",
    "Model",
    "Prediction",
    "Predictor",
    "Preparer",
    "RangeGuard",
    "RuntimeInfo",
    "SelfTestReport",
    "Tolerance",
    "UnverifiedBundleWarning",
    "Variant",
    "compare",
    "create",
    "describe_device",
    "golden_check",
    "installed_runtime",
    "load_golden",
    "load_input_file",
    "load_model",
    "prepare",
    "run_golden",
    "runtime_info",
    "runtime_loaded",
    "self_test",
]
