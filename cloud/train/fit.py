"""The fit loop: deterministic seeds, sane CPU threading, early stopping, concise progress."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

DEFAULT_EPOCHS = 20
DEFAULT_BATCH_SIZE = 32
DEFAULT_PATIENCE = 5
DEFAULT_LEARNING_RATE = 1e-3


@dataclass
class FitResult:
    """What training produced, besides the model itself."""

    history: dict[str, list[float]]
    best_epoch: int  # 1-based epoch whose weights were restored
    epochs_run: int
    seconds: float


def configure_tensorflow(seed: int) -> None:
    """Seed every RNG and size TF's thread pools to this machine before any op runs.

    One inter-op thread avoids oversubscribing small machines (intra-op parallelism already
    uses every core); op determinism makes the same seed give the same model.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(os.cpu_count() or 1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # already initialised (e.g. a second run in one process)
        pass
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class _EpochLine:
    """A one-line-per-epoch progress printer (Keras' own bars are noisy in logs)."""

    def __init__(self, epochs: int, stream: Any = sys.stdout) -> None:
        self.epochs = epochs
        self.stream = stream
        self.started = 0.0

    def callback(self) -> Any:
        import keras

        outer = self

        class Cb(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                outer.started = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                logs = logs or {}
                took = time.perf_counter() - outer.started
                print(
                    f"epoch {epoch + 1:>3}/{outer.epochs}  loss {logs.get('loss', 0):.4f}  "
                    f"acc {logs.get('accuracy', 0):.4f}  val_loss {logs.get('val_loss', 0):.4f}  "
                    f"val_acc {logs.get('val_accuracy', 0):.4f}  ({took:.1f}s)",
                    file=outer.stream,
                    flush=True,
                )

        return Cb()


def fit(
    model: Any,
    data: dict[str, np.ndarray],
    *,
    epochs: int = DEFAULT_EPOCHS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    patience: int = DEFAULT_PATIENCE,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    stream: TextIO | None = sys.stdout,
) -> FitResult:
    """Train with Adam on sparse labels; stop when val_loss stalls and keep the best weights.

    One progress line per epoch goes to ``stream`` (None: silent). Seeding is done once
    beforehand by :func:`configure_tensorflow`.
    """
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=patience, restore_best_weights=True
    )
    callbacks: list[Any] = [stop]
    if stream is not None:
        callbacks.append(_EpochLine(epochs, stream).callback())
    t0 = time.perf_counter()
    hist = model.fit(
        data["x_train"],
        data["y_train"],
        validation_data=(data["x_val"], data["y_val"]),
        epochs=epochs,
        batch_size=batch_size,
        shuffle=True,
        callbacks=callbacks,
        verbose=0,
    )
    seconds = time.perf_counter() - t0
    history = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
    val_loss = history.get("val_loss", [])
    best = int(np.argmin(val_loss)) + 1 if val_loss else len(history.get("loss", []))
    return FitResult(
        history=history, best_epoch=best, epochs_run=len(history.get("loss", [])), seconds=seconds
    )
