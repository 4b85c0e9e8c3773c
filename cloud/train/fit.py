"""The fit loop: deterministic seeds, sane CPU threading, early stopping, concise progress.

How long to train is decided by :func:`epoch_budget` (pure, no TensorFlow): images keep the
quick 20-epoch default; small tables get many more epochs, because an epoch of 100 rows is
only a few optimizer steps, and early stopping ends the run once validation loss stalls.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

DEFAULT_EPOCHS = 20  # images, and the least any table gets
DEFAULT_BATCH_SIZE = 32
DEFAULT_PATIENCE = 5  # images
DEFAULT_LEARNING_RATE = 1e-3
AUTO = "auto"
# Tables: enough epochs for about this many optimizer steps, capped (a 100-row table at
# batch 32 is 4 steps per epoch: 20 epochs were 80 steps and under-fit wine and iris).
# Early stopping usually ends a run well before: this is a ceiling, not the cost. 3000
# steps capped the 5000-row synthetic set at 28 epochs, exactly its best: too tight.
TABULAR_TARGET_STEPS = 10_000
TABULAR_MAX_EPOCHS = 500
# Tables: patience is a tenth of the budget (val_loss on a 20-row validation split is
# noisy and needs room), between these bounds.
PATIENCE_FRACTION = 0.1
MIN_TABULAR_PATIENCE = 10
MAX_TABULAR_PATIENCE = 30


@dataclass(frozen=True)
class EpochBudget:
    """How long to train: the epoch cap, early-stopping patience, and why these values."""

    epochs: int
    patience: int
    reason: str  # e.g. "auto: about 10000 steps at 4 steps/epoch ..." (recorded in run.json)


def tabular_patience(epochs: int) -> int:
    """Patience that grows with the budget: 10 up to 100 epochs, 30 from 300 on."""
    return max(MIN_TABULAR_PATIENCE, min(MAX_TABULAR_PATIENCE, round(PATIENCE_FRACTION * epochs)))


def epoch_budget(
    kind: str,
    n_train: int,
    batch_size: int,
    epochs: int | None = None,
    patience: int | None = None,
) -> EpochBudget:
    """Resolve ``--epochs``/``--patience`` (None = auto) for a training set of ``n_train``.

    An explicit value always wins. Images keep 20 epochs / patience 5 (the digits quick
    start stays fast). Tables get ``TABULAR_TARGET_STEPS`` optimizer steps' worth of epochs,
    between 20 and ``TABULAR_MAX_EPOCHS``; their patience scales with the epochs.
    """
    if n_train < 1 or batch_size < 1:
        raise ValueError(f"need n_train and batch_size >= 1, got {n_train}, {batch_size}")
    if epochs is not None:
        reason = "explicit --epochs"
    elif kind == "tabular":
        steps = math.ceil(n_train / batch_size)
        wanted = math.ceil(TABULAR_TARGET_STEPS / steps)
        epochs = max(DEFAULT_EPOCHS, min(TABULAR_MAX_EPOCHS, wanted))
        reason = (
            f"auto: about {TABULAR_TARGET_STEPS} steps at {steps} steps/epoch "
            f"({n_train} rows, batch {batch_size}), between {DEFAULT_EPOCHS} and "
            f"{TABULAR_MAX_EPOCHS} epochs"
        )
    else:
        epochs = DEFAULT_EPOCHS
        reason = f"auto: {DEFAULT_EPOCHS} epochs for {kind} data"
    if patience is None:
        patience = tabular_patience(epochs) if kind == "tabular" else DEFAULT_PATIENCE
    return EpochBudget(epochs=epochs, patience=patience, reason=reason)


def underfit_warning(best_epoch: int, epochs_run: int, epochs: int) -> str | None:
    """A warning when the kept weights are those of the very last epoch allowed.

    Validation loss was still falling when the budget ran out, so more epochs would
    probably have helped; early stopping never had the chance to decide.
    """
    if epochs_run < epochs or best_epoch < epochs_run:
        return None
    return (
        f"best epoch was the last ({best_epoch}/{epochs}): the model may be under-fit; "
        f"train longer with --epochs (e.g. --epochs {2 * epochs})"
    )


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
    beforehand by :func:`configure_tensorflow`. (A ReduceLROnPlateau schedule was measured
    on wine, iris, breast cancer and the synthetic set: no consistent gain, so none.)
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
