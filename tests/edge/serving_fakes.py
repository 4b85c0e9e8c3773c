"""Stand-ins for a runtime and an observer, to test serving without a real model."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from edge.contract import Manifest
from edge.serving import LoadedModel
from edge.store import Slot
from tests.edge.bundle_factory import raw_digit


class BlockingPredictor:
    """A stand-in runtime whose inference waits for ``release`` and cannot be interrupted
    (like LiteRT), or can (``cancellable``: cancel() releases it with an error)."""

    def __init__(self, cancellable: bool = False) -> None:
        self.release = threading.Event()
        self.cancelled = 0
        self.cancellable = cancellable
        self.threads: list[str] = []

    def infer_model_domain(self, x: np.ndarray) -> np.ndarray:
        self.threads.append(threading.current_thread().name)
        if not self.release.wait(10):
            raise RuntimeError("never released")
        if self.cancelled and self.cancellable:
            raise RuntimeError("cancelled by the watchdog")
        scores = np.zeros((1, 10), np.float32)
        scores[0, 3] = 1.0
        return scores

    def cancel(self) -> bool:
        self.cancelled += 1
        if self.cancellable:
            self.release.set()
        return self.cancellable

    def close(self) -> None:
        self.release.set()


class Outcomes:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.predictions = 0

    def on_prediction(self, *_a: object) -> None:
        self.predictions += 1

    def on_error(self, kind: str) -> None:
        self.errors.append(kind)

    def on_rejection(self, code: str) -> None:
        pass


def served(manifest: Manifest, predictor: object) -> LoadedModel:
    slot = Slot(manifest.name, manifest.version, Path("/nonexistent"), {})
    return LoadedModel(slot, manifest, predictor, "fake", "fp32")  # type: ignore[arg-type]


def digit() -> np.ndarray:
    return np.asarray(raw_digit(), dtype=np.float32)
