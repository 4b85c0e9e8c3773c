"""``edgekit train`` end to end: load -> validate -> split -> prepare -> fit -> write run dir."""

from __future__ import annotations

import datetime as dt
import re
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from cloud.card_info import CardInfo, load_card_info
from cloud.data.dataset import Dataset
from cloud.data.field import lineage_versions
from cloud.data.fingerprint import fingerprint
from cloud.data.images import DEFAULT_IMAGE_SIZE, DEFAULT_MAX_BAD_FRACTION, resize_images
from cloud.data.preprocess import apply_preprocessing, fit_preprocessing
from cloud.data.reference import build_reference
from cloud.data.report import data_report, render_report
from cloud.data.sources import load_dataset
from cloud.data.split import stratified_split
from cloud.data.validate import validate
from cloud.train import archs
from cloud.train.fit import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_LEARNING_RATE,
    configure_tensorflow,
    epoch_budget,
    fit,
    underfit_warning,
)
from cloud.train.report import render_training_report
from cloud.train.rundir import (
    check_run_dir,
    code_version,
    group_arrays,
    groups_info,
    prepare_run_dir,
    write_arrays,
    write_json,
)
from edge.contract import TensorSpec
from edge.errors import ConfigError


@dataclass
class TrainOptions:
    """Everything ``edgekit train`` accepts; recorded in run.json as hyper-parameters."""

    dataset: str
    out: Path
    label_column: str = "label"
    arch: str = "auto"
    epochs: int | None = None  # None: auto (cloud.train.fit.epoch_budget)
    batch_size: int = DEFAULT_BATCH_SIZE
    patience: int | None = None  # None: auto, scaled with the epochs
    learning_rate: float = DEFAULT_LEARNING_RATE
    seed: int = 0
    name: str | None = None
    width_multiplier: float = 1.0
    input_size: int | None = None
    image_size: int | None = None
    max_bad_images: float = DEFAULT_MAX_BAD_FRACTION
    force: bool = False
    group_column: str | None = None
    exclude_columns: list[str] = field(default_factory=list)
    card_info: Path | None = None

    def check(self) -> None:
        """Refuse nonsense options before any slow work starts."""
        positive = {"--epochs": self.epochs, "--batch-size": self.batch_size}
        for flag, value in positive.items():
            if value is not None and value < 1:
                raise ConfigError(f"{flag} must be at least 1, got {value}")
        if self.patience is not None and self.patience < 0:
            raise ConfigError(f"--patience must be 0 or more, got {self.patience}")
        if not 0 < self.width_multiplier <= 4:
            raise ConfigError(f"--width-multiplier must be in (0, 4], got {self.width_multiplier}")
        for flag, size in (("--input-size", self.input_size), ("--image-size", self.image_size)):
            if size is not None and not 1 <= size <= 1024:
                raise ConfigError(f"{flag} must be between 1 and 1024, got {size}")
        if not 0 <= self.max_bad_images < 1:
            raise ConfigError(f"--max-bad-images must be in [0, 1), got {self.max_bad_images}")
        if self.learning_rate <= 0:
            raise ConfigError(f"--learning-rate must be positive, got {self.learning_rate}")
        if self.arch not in archs.ARCHS:
            raise ConfigError(
                f"unknown --arch {self.arch!r}; choose one of {', '.join(archs.ARCHS)}"
            )
        self._check_columns()

    def _check_columns(self) -> None:
        """--group-column / --exclude-columns against the label (the data checks the rest)."""
        if self.group_column is not None and not self.group_column.strip():
            raise ConfigError("--group-column is empty; name a column or leave the flag out")
        if any(not c.strip() for c in self.exclude_columns):
            raise ConfigError("--exclude-columns has an empty column name (check the commas)")
        if self.group_column == self.label_column:
            raise ConfigError(f"--group-column cannot be the label column {self.label_column!r}")
        if self.label_column in self.exclude_columns:
            raise ConfigError(
                f"--exclude-columns cannot hold the label column {self.label_column!r}"
            )


def _say(stream: TextIO | None, msg: str) -> None:
    if stream is not None:
        print(msg, file=stream, flush=True)


def default_name(dataset: str) -> str:
    """A model name from the dataset: ``iris.csv`` -> ``iris``, ``photos/`` -> ``photos``."""
    stem = Path(dataset.rstrip("/\\")).stem or "model"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.") or "model"


def _model_shape(ds: Dataset, arch: str, input_size: int | None) -> tuple[int, int]:
    """Target ``(size, channels)`` for image data; resizing happens in the data, not the model."""
    _, h, w, c = ds.x.shape
    if arch == "mobilenetv2":
        return input_size or archs.MOBILENET_DEFAULT_SIZE, 3
    if input_size is not None:
        return input_size, c
    return (h if h == w else max(h, w)), c


def run_training(opts: TrainOptions, stream: TextIO | None = sys.stdout) -> dict[str, Any]:
    """Train and write the run directory; returns the run.json document."""
    opts.check()
    check_run_dir(opts.out, opts.force)
    card_info: CardInfo | None = None if opts.card_info is None else load_card_info(opts.card_info)
    started = time.perf_counter()
    image_size = opts.image_size
    if image_size is None:
        wants_big = opts.arch == "mobilenetv2" and opts.input_size
        image_size = opts.input_size if wants_big else DEFAULT_IMAGE_SIZE
    _say(stream, f"loading {opts.dataset} ...")
    ds = load_dataset(
        opts.dataset,
        label_column=opts.label_column,
        image_size=image_size or DEFAULT_IMAGE_SIZE,
        max_bad_fraction=opts.max_bad_images,
        group_column=opts.group_column,
        exclude_columns=opts.exclude_columns,
    )
    validate(ds)
    arch = archs.resolve_arch(opts.arch, ds.kind)
    prepare_run_dir(opts.out, opts.force)
    fp = fingerprint(ds)
    split = stratified_split(ds.y, opts.seed)
    report = data_report(ds, split, fp)
    _say(stream, render_report(report))
    parts = {"train": split.train, "val": split.val, "test": split.test}
    groups = None
    if ds.groups is not None and ds.group_column is not None:
        groups = groups_info(ds.group_column, ds.groups, parts)
        _say(stream, _describe_groups(groups))

    if ds.kind == "image":
        size, channels = _model_shape(ds, arch, opts.input_size)
        if (ds.x.shape[1], ds.x.shape[2], ds.x.shape[3]) != (size, size, channels):
            _say(stream, f"resizing images to {size}x{size}x{channels} ...")
            ds.x = resize_images(ds.x, size, channels)
            ds.color = "grayscale" if channels == 1 else "rgb"
    prep = fit_preprocessing(ds, split.train)
    data: dict[str, np.ndarray] = {}
    for part, idx in (("train", split.train), ("val", split.val), ("test", split.test)):
        data[f"x_{part}"] = apply_preprocessing(prep, ds.x[idx])
        data[f"y_{part}"] = ds.y[idx]
    ds.x = ds.x[:0]  # large (e.g. 224x224 RGB) raw copies are not needed past this point

    configure_tensorflow(opts.seed)
    input_shape = tuple(int(d) for d in data["x_train"].shape[1:])
    model = archs.build_model(
        arch, input_shape, ds.n_classes, width_multiplier=opts.width_multiplier
    )
    budget = epoch_budget(ds.kind, len(split.train), opts.batch_size, opts.epochs, opts.patience)
    _say(
        stream,
        f"training {arch} ({model.count_params():,} parameters) on {input_shape}: up to "
        f"{budget.epochs} epochs, patience {budget.patience} ({budget.reason}) ...",
    )
    result = fit(
        model,
        data,
        epochs=budget.epochs,
        batch_size=opts.batch_size,
        patience=budget.patience,
        learning_rate=opts.learning_rate,
        stream=stream,
    )
    warnings = [
        w for w in [underfit_warning(result.best_epoch, result.epochs_run, budget.epochs)] if w
    ]
    for w in warnings:
        _say(stream, f"warning: {w}")
    _, val_acc = model.evaluate(data["x_val"], data["y_val"], verbose=0)
    test_loss, test_acc = model.evaluate(data["x_test"], data["y_test"], verbose=0)
    val_scores = np.asarray(model.predict(data["x_val"], verbose=0), dtype=np.float32)

    input_names = (
        list(prep["features"])
        if ds.kind == "tabular"
        else [f"channel{k}" for k in range(input_shape[-1])]
    )
    reference = build_reference(data["x_train"], ds.kind, input_names, val_scores, ds.labels)
    model.save(opts.out / "model.keras")
    # The row indices of each split in the loaded dataset (row i of a CSV is sample i), so
    # anyone can refit another model on exactly the rows edgekit trained and tested on.
    indices = {f"index_{part}": getattr(split, part) for part in ("train", "val", "test")}
    if ds.groups is not None:  # group names beside the splits, never inside x
        indices.update(group_arrays(ds.groups, parts))
    write_arrays(opts.out / "data.npz", {**data, **indices})
    write_json(opts.out / "reference.json", reference)

    hyper = {
        k: v
        for k, v in asdict(opts).items()
        if k not in ("dataset", "out", "name", "force", "seed", "card_info")
    }
    hyper["image_size"] = image_size if ds.kind == "image" else None
    hyper.update(epochs=budget.epochs, patience=budget.patience, epoch_budget=budget.reason)
    run: dict[str, Any] = {
        "name": opts.name or default_name(opts.dataset),
        "kind": ds.kind,
        "labels": ds.labels,
        "feature_names": ds.feature_names if ds.kind == "tabular" else None,
        "input": TensorSpec("input", [1, *input_shape], "float32").to_dict(),
        "output": TensorSpec("scores", [1, ds.n_classes], "float32").to_dict(),
        "preprocessing": prep,
        "arch": arch,
        "parameters": int(model.count_params()),
        "hyperparameters": hyper,
        "seed": opts.seed,
        "dataset": {
            "source": ds.source,
            "fingerprint": fp,
            "report": report,
            "versions": lineage_versions(ds, fp),  # original and field dataset versions
        },
        "groups": groups,
        "excluded_columns": ds.excluded_columns,
        "card_info": None if card_info is None else card_info.to_dict(),
        "metrics": {
            "val_accuracy": float(val_acc),
            "test_accuracy": float(test_acc),
            "test_loss": float(test_loss),
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "warnings": warnings,  # also here so export lineage (training_metrics) carries it
            "train_seconds": round(result.seconds, 2),
            "total_seconds": round(time.perf_counter() - started, 2),
        },
        "code_version": code_version(),
        "history": result.history,
        "warnings": warnings,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    (opts.out / "report.md").write_text(render_training_report(run), encoding="utf-8")
    write_json(opts.out / "run.json", run)  # last: its presence marks a complete run
    _say(
        stream,
        f"test accuracy {test_acc:.4f} (val {val_acc:.4f}, best epoch {result.best_epoch}/"
        f"{result.epochs_run}, {run['metrics']['total_seconds']:.1f}s) -> {opts.out}",
    )
    return run


def _describe_groups(groups: dict[str, Any]) -> str:
    test = groups["counts"]["test"]
    shown = ", ".join(f"{g} {n}" for g, n in list(test.items())[:10])
    more = f", ... ({len(test)} groups)" if len(test) > 10 else ""
    absent = len(groups["values"]) - len(test)
    note = f"; {absent} group(s) have no test rows" if absent else ""
    return (
        f"group column {groups['column']!r} (not a feature): {len(groups['values'])} groups; "
        f"test rows per group: {shown}{more}{note}"
    )
