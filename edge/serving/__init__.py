"""Serving inference: the model server (caller thread, watchdog, shadow), health and drift.

Sits between the runtime (which runs one call) and the agent (which decides what to serve).
"""

from edge.serving.drift_watch import DEFAULT_FEATURE_THRESHOLD as DEFAULT_DRIFT_FEATURE_THRESHOLD
from edge.serving.drift_watch import DEFAULT_THRESHOLD as DEFAULT_DRIFT_THRESHOLD
from edge.serving.monitor import Monitor
from edge.serving.server import (
    InferenceTimeoutError,
    LoadedModel,
    ModelServer,
    NoModelError,
    Sampler,
    SerialWorker,
)

__all__ = [
    "DEFAULT_DRIFT_FEATURE_THRESHOLD",
    "DEFAULT_DRIFT_THRESHOLD",
    "InferenceTimeoutError",
    "LoadedModel",
    "ModelServer",
    "Monitor",
    "NoModelError",
    "Sampler",
    "SerialWorker",
]
