"""Resolve a DATASET argument (``digits``, a folder, a .csv or an .npz) into a Dataset."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from cloud.data.dataset import Dataset
from cloud.data.images import DEFAULT_IMAGE_SIZE, DEFAULT_MAX_BAD_FRACTION, load_image_folder
from cloud.data.labels import encode_labels
from cloud.data.tabular import load_csv
from edge.errors import DataError

BUILTIN = ("digits",)


def load_dataset(
    spec: str,
    *,
    label_column: str = "label",
    image_size: int = DEFAULT_IMAGE_SIZE,
    max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION,
) -> Dataset:
    """Load ``spec``: a built-in name, an image folder, a ``.csv`` or an ``.npz`` file."""
    if spec in BUILTIN:
        return load_digits()
    path = Path(spec)
    if not path.exists():
        raise DataError(
            f"dataset {spec!r} not found: give 'digits', an image folder, a .csv or an .npz file"
        )
    if path.is_dir():
        return load_image_folder(path, size=image_size, max_bad_fraction=max_bad_fraction)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return load_csv(path, label_column=label_column)
    if suffix == ".npz":
        return load_npz(path)
    raise DataError(f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv or .npz")


def load_digits() -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1797 samples, values 0..16, no download)."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = np.asarray(bunch.images, dtype=np.float32)[..., None]
    return Dataset(
        x=x,
        y=np.asarray(bunch.target, dtype=np.int64),
        labels=[str(int(t)) for t in bunch.target_names],
        kind="image",
        source="digits",
        raw_range=(0.0, 16.0),
        color="grayscale",
    )


def load_npz(path: Path) -> Dataset:
    """An ``.npz`` with ``x`` (2-D tabular, 3-D/4-D images) and ``y`` (ints or strings)."""
    if not zipfile.is_zipfile(path):  # np.load would otherwise try .npy or pickle
        raise DataError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = list(data.files)
            if "x" not in names or "y" not in names:
                raise DataError(f"{path}: needs arrays 'x' and 'y'; arrays present: {names}")
            x, y_raw = data["x"], data["y"]
    except DataError:
        raise
    except ValueError as exc:  # object arrays need pickle, which we refuse
        raise DataError(f"{path}: cannot read arrays without pickle ({exc})") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
    if x.dtype.kind not in "iufb":
        raise DataError(f"{path}: 'x' must be numeric, got dtype {x.dtype}")
    if len(x) != len(y_raw):
        raise DataError(f"{path}: 'x' has {len(x)} samples but 'y' has {len(y_raw)}")
    y, labels = encode_labels(y_raw, str(path))
    if x.ndim == 2:
        return Dataset(
            x=x.astype(np.float32),
            y=y,
            labels=labels,
            kind="tabular",
            source=str(path),
            feature_names=[f"f{i}" for i in range(x.shape[1])],
        )
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3):
        raise DataError(
            f"{path}: 'x' must be [N, F] (tabular), [N, H, W] or [N, H, W, 1|3] (images), "
            f"got shape {list(x.shape)}"
        )
    if x.dtype == np.uint8:
        raw_range = (0.0, 255.0)
    else:
        finite = x[np.isfinite(x)] if x.dtype.kind == "f" else x
        lo = float(finite.min()) if finite.size else 0.0
        hi = float(finite.max()) if finite.size else 1.0
        raw_range = (lo, hi if hi > lo else lo + 1.0)
    return Dataset(
        x=x.astype(np.float32),
        y=y,
        labels=labels,
        kind="image",
        source=str(path),
        raw_range=raw_range,
        color="grayscale" if x.shape[-1] == 1 else "rgb",
    )
