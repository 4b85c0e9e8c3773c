"""Build the benchmarks' bundles through the real ``edgekit`` CLI.

Each command runs in its own process so TensorFlow's memory is freed when it exits; the
agent and variants benchmarks share these helpers so both time bundles made the same way.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import EdgekitError

Log = Callable[[str], None]


def run_edgekit(args: list[str], log: Log, stdout_to_stderr: bool = False) -> None:
    """Run ``edgekit *args``; its progress goes straight to our terminal.

    ``stdout_to_stderr`` keeps our own stdout clean for a table printed after it."""
    log("$ edgekit " + " ".join(args))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    sink: Any = None
    if stdout_to_stderr:
        try:
            sink = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            sink = None
    proc = subprocess.run([sys.executable, "-m", "edge.cli", *args], env=env, stdout=sink)
    if proc.returncode != 0:
        raise EdgekitError(f"edgekit {args[0]} failed with exit {proc.returncode} (output above)")


def digits_subset(path: Path, per_class: int) -> Path:
    """The first ``per_class`` digits of each class as an ``x``/``y`` .npz (a small set
    that still trains every architecture quickly)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = np.concatenate([np.flatnonzero(d.target == c)[:per_class] for c in range(10)])
    np.savez(path, x=d.images[idx].astype(np.float32), y=d.target[idx].astype(np.int64))
    return path


def mobilenet_train_args(epochs: int) -> list[str]:
    """The benchmarks' realistic-size model: MobileNetV2 alpha 0.35 at 224x224, trained
    briefly (its accuracy on a digits subset is meaningless; size and latency are real)."""
    return [
        "--arch",
        "mobilenetv2",
        "--input-size",
        "224",
        "--width-multiplier",
        "0.35",
        "--epochs",
        str(epochs),
        "--batch-size",
        "16",
    ]


def train_and_export(
    name: str,
    dataset: str,
    work: Path,
    key: Path,
    train_args: list[str],
    log: Log,
    export_args: tuple[str, ...] = (),
    stdout_to_stderr: bool = False,
) -> Path:
    """Train ``name`` on ``dataset`` into ``work/run`` and export it signed, gate open
    (every variant is kept so it can be timed), to ``work/<name>.ekb``; returns that path."""
    run_dir, bundle = work / "run", work / f"{name}.ekb"
    train = [dataset, "--out", str(run_dir), "--force", "--quiet", "--name", name, *train_args]
    run_edgekit(["train", *train], log, stdout_to_stderr)
    export = [str(run_dir), "--out", str(bundle), "--name", name, "--version", "1"]
    export += ["--key", str(key), "--max-accuracy-drop", "100", *export_args]
    run_edgekit(["export", *export], log, stdout_to_stderr)
    return bundle
