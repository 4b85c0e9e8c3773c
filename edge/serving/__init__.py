"""Serving inference: the model server (caller thread, watchdog, shadow), health and drift.

Sits between the runtime (which runs one call) and the agent (which decides what to serve).
"""

from edge.serving.monitor import Monitor
from edge.serving.server import (
    InferenceTimeoutError,
    LoadedModel,
    ModelServer,
    NoModelError,
    SerialWorker,
)

__all__ = [
    "InferenceTimeoutError",
    "LoadedModel",
    "ModelServer",
    "Monitor",
    "NoModelError",
    "SerialWorker",
]
