"""Read a training run directory (written by ``edgekit train``) for export.

The layout is agreed in notes/interfaces: ``model.keras``, ``data.npz`` (model-domain
splits), ``reference.json`` (drift statistics), ``run.json`` (labels, tensors,
preprocessing, lineage) and ``report.md``. Everything is checked before any slow
conversion starts, so an incomplete run dir fails in a second with a one-line error.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import DataError

REQUIRED_FILES = ("model.keras", "data.npz", "reference.json", "run.json")
SPLITS = ("train", "val", "test")
RUN_KEYS = ("labels", "input", "output", "preprocessing")
GROUP_PREFIX = "group_"  # as cloud/train/rundir.py writes them (docs/training.md)


@dataclass
class TrainingRun:
    """The parts of a run dir the exporter needs; ``model`` is loaded lazily (TensorFlow)."""

    path: Path
    info: dict[str, Any]
    reference: dict[str, Any]
    x: dict[str, np.ndarray]  # split -> model-domain float32 batch
    y: dict[str, np.ndarray]  # split -> int64 class indices
    _model: Any = field(default=None, repr=False)
    groups: dict[str, np.ndarray] | None = None  # split -> group name per row (--group-column)

    @property
    def group_column(self) -> str | None:
        """The column ``edgekit train --group-column`` named, or None."""
        block = self.info.get("groups")
        return str(block["column"]) if isinstance(block, dict) and self.groups else None

    @property
    def labels(self) -> list[str]:
        return [str(s) for s in self.info["labels"]]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Model-domain shape of one sample (no batch dimension)."""
        return tuple(int(d) for d in self.x["train"].shape[1:])

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    def model(self) -> Any:
        """The float Keras model, loaded once and called once (ONNX export needs that)."""
        if self._model is None:
            import keras

            try:
                self._model = keras.saving.load_model(self.model_path, compile=False)
            except Exception as exc:
                raise DataError(f"cannot load {self.model_path}: {exc}") from exc
            self._model(self.x["train"][:1])
        return self._model


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"run dir: cannot read {path.name}: {exc}") from exc
    if not isinstance(obj, dict):
        raise DataError(f"run dir: {path.name} must hold a JSON object")
    return obj


def _read_splits(
    path: Path,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"run dir: cannot read {path.name}: {exc}") from exc
    missing = [f"{a}_{s}" for s in SPLITS for a in "xy" if f"{a}_{s}" not in arrays]
    if missing:
        raise DataError(f"run dir: {path.name} lacks array(s) {', '.join(missing)}")
    xs: dict[str, np.ndarray] = {}
    ys: dict[str, np.ndarray] = {}
    for s in SPLITS:
        x, y = arrays[f"x_{s}"], arrays[f"y_{s}"]
        if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
            raise DataError(
                f"run dir: x_{s} {x.shape} and y_{s} {y.shape} must be a batch and its labels"
            )
        if len(x) == 0:
            raise DataError(f"run dir: the {s} split is empty")
        if not np.issubdtype(x.dtype, np.number) or not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"run dir: x_{s} must be numeric and y_{s} integer")
        xf = x.astype(np.float32, copy=False)
        if not np.all(np.isfinite(xf)):
            raise DataError(f"run dir: x_{s} contains NaN or inf")
        xs[s], ys[s] = xf, y.astype(np.int64, copy=False)
    shapes = {xs[s].shape[1:] for s in SPLITS}
    if len(shapes) != 1:
        raise DataError(f"run dir: the splits have different sample shapes {sorted(shapes)}")
    return xs, ys, _read_groups(path, arrays, ys)


def _read_groups(
    path: Path, arrays: dict[str, np.ndarray], ys: dict[str, np.ndarray]
) -> dict[str, np.ndarray] | None:
    """``group_<split>`` arrays (all three or none), each one string per row of its split."""
    present = [s for s in SPLITS if f"{GROUP_PREFIX}{s}" in arrays]
    if not present:
        return None
    if len(present) != len(SPLITS):
        missing = [f"{GROUP_PREFIX}{s}" for s in SPLITS if s not in present]
        raise DataError(f"run dir: {path.name} has group arrays but lacks {', '.join(missing)}")
    groups: dict[str, np.ndarray] = {}
    for s in SPLITS:
        g = arrays[f"{GROUP_PREFIX}{s}"]
        if g.dtype.kind != "U" or g.shape != ys[s].shape:
            raise DataError(
                f"run dir: {GROUP_PREFIX}{s} must hold one group name per row of y_{s} "
                f"({len(ys[s])}), got dtype {g.dtype.kind!r} and shape {list(g.shape)}"
            )
        groups[s] = g
    return groups


def load_run(path: Path | str) -> TrainingRun:
    """Check a run dir is complete and consistent, and read everything but the model."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"run dir {root} does not exist or is not a directory")
    missing = [f for f in REQUIRED_FILES if not (root / f).is_file()]
    if missing:
        raise DataError(
            f"run dir {root} is incomplete: missing {', '.join(missing)} "
            "(create one with `edgekit train`)"
        )
    info = _read_json(root / "run.json")
    absent = [k for k in RUN_KEYS if k not in info]
    if absent:
        raise DataError(f"run dir: run.json lacks {', '.join(absent)}")
    labels = info["labels"]
    if not isinstance(labels, list) or len(labels) < 2:
        raise DataError("run dir: run.json 'labels' must list at least two classes")
    if not isinstance(info["preprocessing"], dict):
        raise DataError("run dir: run.json 'preprocessing' must be an object")
    reference = _read_json(root / "reference.json")
    xs, ys, groups = _read_splits(root / "data.npz")
    block = info.get("groups")
    if groups is not None and not (
        isinstance(block, dict) and isinstance(block.get("column"), str)
    ):
        raise DataError("run dir: data.npz has group arrays but run.json 'groups' lacks 'column'")
    for s in SPLITS:
        if ys[s].min() < 0 or ys[s].max() >= len(labels):
            raise DataError(f"run dir: y_{s} holds class indices outside 0..{len(labels) - 1}")
    return TrainingRun(path=root, info=info, reference=reference, x=xs, y=ys, groups=groups)
