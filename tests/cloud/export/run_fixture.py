"""Build a small but real training run dir (sklearn digits + a Keras CNN) for export tests.

It follows the run dir format agreed in notes/interfaces exactly, so the exporter is tested
against the same files ``edgekit train`` writes, without depending on the trainer's code.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tests.digits import DIGITS_LABELS, DIGITS_PREPROCESSING


def _split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified 70/15/15 index split."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        a, b = int(0.7 * len(idx)), int(0.85 * len(idx))
        for part, chunk in zip(parts, (idx[:a], idx[a:b], idx[b:]), strict=True):
            part.extend(int(i) for i in chunk)
    return tuple(np.array(sorted(p)) for p in parts)  # type: ignore[return-value]


def _hist(values: np.ndarray, edges: np.ndarray) -> dict[str, list[float] | list[int]]:
    counts, _ = np.histogram(values, bins=edges)
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}


def build_digits_run(out: Path, *, epochs: int = 40, seed: int = 0, width: int = 16) -> Path:
    """Train a small CNN on sklearn digits and write ``out`` as a complete run dir."""
    import keras
    from sklearn.datasets import load_digits

    digits = load_digits()
    raw = digits.images.astype(np.float32)[..., None]  # [N, 8, 8, 1], values 0..16
    x = raw / 16.0
    y = digits.target.astype(np.int64)
    tr, va, te = _split(y, seed)

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1), name="input"),
            keras.layers.Conv2D(width, 3, padding="same", activation="relu"),
            keras.layers.Conv2D(width * 2, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax", name="scores"),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(2e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    history = model.fit(
        x[tr], y[tr], validation_data=(x[va], y[va]), epochs=epochs, batch_size=64, verbose=0
    )
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    np.savez(
        out / "data.npz",
        x_train=x[tr],
        y_train=y[tr],
        x_val=x[va],
        y_val=y[va],
        x_test=x[te],
        y_test=y[te],
    )
    scores_train = model.predict(x[tr], verbose=0)
    test_acc = float(np.mean(model.predict(x[te], verbose=0).argmax(1) == y[te]))
    val_acc = float(np.mean(model.predict(x[va], verbose=0).argmax(1) == y[va]))
    mix = np.bincount(scores_train.argmax(1), minlength=10) / len(tr)
    reference = {
        "schema": "edgekit.reference/1",
        "inputs": {
            "granularity": "channel",
            "names": ["gray"],
            "histograms": [_hist(x[tr].ravel(), np.linspace(0.0, 1.0, 11))],
        },
        "outputs": {
            "labels": DIGITS_LABELS,
            "class_mix": [float(m) for m in mix],
            "confidence": _hist(scores_train.max(1), np.linspace(0.0, 1.0, 11)),
        },
        "n": len(tr),
    }
    (out / "reference.json").write_text(json.dumps(reference, indent=1))
    fingerprint = hashlib.sha256(raw.tobytes() + y.tobytes()).hexdigest()
    run = {
        "name": "digits",
        "kind": "image",
        "labels": DIGITS_LABELS,
        "feature_names": None,
        "input": {"name": "input", "shape": [1, 8, 8, 1], "dtype": "float32"},
        "output": {"name": "scores", "shape": [1, 10], "dtype": "float32"},
        "preprocessing": DIGITS_PREPROCESSING,
        "arch": "cnn",
        "hyperparameters": {"epochs": epochs, "batch_size": 64, "learning_rate": 2e-3},
        "seed": seed,
        "dataset": {
            "source": "sklearn digits",
            "fingerprint": f"sha256:{fingerprint}",
            "report": {"samples": len(y), "train": len(tr), "val": len(va), "test": len(te)},
        },
        "metrics": {"val_accuracy": val_acc, "test_accuracy": test_acc},
        "code_version": "test-fixture",
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (out / "run.json").write_text(json.dumps(run, indent=1))
    (out / "report.md").write_text(f"# digits fixture\n\ntest accuracy {test_acc:.4f}\n")
    return out


if __name__ == "__main__":
    import sys

    path = build_digits_run(Path(sys.argv[1]))
    print(json.loads((path / "run.json").read_text())["metrics"])
