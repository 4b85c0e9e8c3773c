"""Stand-ins for a runtime and an observer, to test serving without a real model."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import Slot
from edge.contract import Manifest
from edge.serving import LoadedModel
from tests.bundles import raw_digit


class BlockingPredictor:
    """A stand-in runtime whose inference waits for ``release`` and cannot be interrupted
    (like LiteRT), or can (``cancellable``: cancel() releases it with an error)."""

    fillable = False  # takes prepared inputs (Predictor.infer_model_domain) only

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
        self.rejections: list[str] = []
        self.out_of_range: list[list[str]] = []

    def on_input(self, _x: np.ndarray) -> None:
        pass

    def on_prediction(self, *_a: object) -> None:
        self.predictions += 1

    def on_error(self, kind: str) -> None:
        self.errors.append(kind)

    def on_rejection(self, code: str) -> None:
        self.rejections.append(code)

    def on_out_of_range(self, features: list[str]) -> None:
        self.out_of_range.append(list(features))


def served(manifest: Manifest, predictor: object) -> LoadedModel:
    slot = Slot(manifest.name, manifest.version, Path("/nonexistent"), {})
    return LoadedModel(slot, manifest, predictor, "fake", "fp32")  # type: ignore[arg-type]


def digit() -> np.ndarray:
    return np.asarray(raw_digit(), dtype=np.float32)


class FillingPredictor:
    """A stand-in for a runtime whose input tensor the server fills in place (LiteRT
    fp32): scores say which pixel of the prepared input is largest."""

    fillable = True

    def __init__(self) -> None:
        self.buffer = np.zeros((8, 8, 1), np.float32)
        self.seen: list[np.ndarray] = []

    def _scores(self, x: np.ndarray) -> np.ndarray:
        scores = np.zeros((1, 10), np.float32)
        scores[0, int(np.argmax(x)) % 10] = 1.0
        return scores

    def fill_and_infer(self, fill: Any) -> np.ndarray | None:
        if not fill(self.buffer):
            return None
        self.seen.append(self.buffer.copy())
        return self._scores(self.buffer)

    def infer_model_domain(self, x: np.ndarray) -> np.ndarray:
        self.seen.append(np.array(x[0]))
        return self._scores(x[0])

    def cancel(self) -> bool:
        return False

    def close(self) -> None:
        pass
