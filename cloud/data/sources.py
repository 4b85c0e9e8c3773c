"""Resolve a DATASET argument (``digits``, a folder, a .csv or an .npz) into a Dataset."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cloud.data.dataset import Dataset
from cloud.data.field import read_meta
from cloud.data.groups import group_values
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
    group_column: str | None = None,
    exclude_columns: Sequence[str] = (),
) -> Dataset:
    """Load ``spec``: a built-in name, an image folder, a ``.csv`` or an ``.npz`` file.

    ``group_column`` and ``exclude_columns`` need named columns: a CSV, or an ``.npz``
    (group = an extra 1-D array of that name; excluded = ``f<i>`` feature names).
    """
    path = Path(spec)
    if (group_column is not None or exclude_columns) and (spec in BUILTIN or path.is_dir()):
        flag = "--group-column" if group_column is not None else "--exclude-columns"
        raise DataError(
            f"{flag} needs named columns: use a .csv (or an .npz with a groups array); "
            f"{spec!r} is an image dataset"
        )
    if spec in BUILTIN:
        return load_digits()
    if not path.exists():
        raise DataError(
            f"dataset {spec!r} not found: give 'digits', an image folder, a .csv or an .npz file"
        )
    if path.is_dir():
        return _load_folder(path, label_column, image_size, max_bad_fraction)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return load_csv(
            path,
            label_column=label_column,
            group_column=group_column,
            exclude_columns=exclude_columns,
        )
    if suffix == ".npz":
        return load_npz(path, group_column=group_column, exclude_columns=exclude_columns)
    raise DataError(f"{path}: unsupported file type {suffix or '(none)'!r}; use .csv or .npz")


def _load_folder(path: Path, label_column: str, image_size: int, bad: float) -> Dataset:
    """An image folder, or a field dataset export (``edgekit-dataset.json`` names its data
    file and travels into the run's lineage as ``extra["field_dataset"]``)."""
    meta = read_meta(path)
    if meta is None or meta["format"] == "images":
        ds = load_image_folder(path, size=image_size, max_bad_fraction=bad)
    else:
        ds = load_dataset(
            str(path / meta["data"]),
            label_column=str(meta.get("label_column") or label_column),
            image_size=image_size,
            max_bad_fraction=bad,
        )
    if meta is not None:
        ds.extra["field_dataset"] = meta
        ds.source = str(path)
    return ds


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


def load_npz(
    path: Path, *, group_column: str | None = None, exclude_columns: Sequence[str] = ()
) -> Dataset:
    """An ``.npz`` with ``x`` (2-D tabular, 3-D/4-D images) and ``y`` (ints or strings).

    ``group_column`` names an extra 1-D array (e.g. ``groups``) with one group per sample;
    ``exclude_columns`` drops tabular features by their names ``f0``, ``f1``, ...
    """
    x, y_raw, g_raw = _read_npz(path, group_column)
    if x.dtype.kind not in "iufb":
        raise DataError(f"{path}: 'x' must be numeric, got dtype {x.dtype}")
    if len(x) != len(y_raw):
        raise DataError(f"{path}: 'x' has {len(x)} samples but 'y' has {len(y_raw)}")
    y, labels = encode_labels(y_raw, str(path))
    groups = None if g_raw is None else _npz_groups(path, g_raw, str(group_column), len(x))
    if exclude_columns and x.ndim != 2:
        raise DataError(f"{path}: --exclude-columns needs tabular data ('x' of shape [N, F])")
    if x.ndim == 2:
        names_all = [f"f{i}" for i in range(x.shape[1])]
        keep, excluded = _npz_keep(path, names_all, exclude_columns)
        return Dataset(
            x=x[:, keep].astype(np.float32),
            y=y,
            labels=labels,
            kind="tabular",
            source=str(path),
            feature_names=[names_all[i] for i in keep],
            groups=groups,
            group_column=group_column,
            excluded_columns=excluded,
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
        groups=groups,
        group_column=group_column,
    )


def _npz_groups(path: Path, g_raw: np.ndarray, column: str, n: int) -> np.ndarray:
    if g_raw.shape != (n,):
        raise DataError(
            f"{path}: group array {column!r} must be 1-D with one value per sample "
            f"({n}), got shape {list(g_raw.shape)}"
        )
    return group_values(g_raw, column, str(path))


def _npz_keep(
    path: Path, names: list[str], exclude_columns: Sequence[str]
) -> tuple[list[int], list[str]]:
    """Indices of the kept ``f<i>`` features and the validated excluded names."""
    excluded = list(dict.fromkeys(c.strip() for c in exclude_columns))
    unknown = [c for c in excluded if c not in names]
    if unknown:
        raise DataError(
            f"{path}: --exclude-columns names unknown feature(s) {unknown[:5]}; "
            f"the .npz features are f0..f{len(names) - 1}"
        )
    keep = [i for i, n in enumerate(names) if n not in excluded]
    if not keep:
        raise DataError(f"{path}: --exclude-columns leaves no feature")
    return keep, excluded


def _read_npz(
    path: Path, group_column: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Arrays ``x``, ``y`` and the optional group array, without ever unpickling."""
    if not zipfile.is_zipfile(path):  # np.load would otherwise try .npy or pickle
        raise DataError(f"{path}: not a readable .npz file (not a zip archive)")
    try:
        with np.load(path, allow_pickle=False) as data:
            names = list(data.files)
            if "x" not in names or "y" not in names:
                raise DataError(f"{path}: needs arrays 'x' and 'y'; arrays present: {names}")
            x, y_raw = data["x"], data["y"]
            if group_column is not None and group_column not in names:
                raise DataError(f"{path}: no group array {group_column!r}; arrays present: {names}")
            if group_column in ("x", "y"):
                raise DataError(f"{path}: the group array cannot be {group_column!r}")
            g_raw = None if group_column is None else data[group_column]
    except DataError:
        raise
    except ValueError as exc:  # object arrays need pickle, which we refuse
        raise DataError(f"{path}: cannot read arrays without pickle ({exc})") from exc
    except (OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from exc
    return x, y_raw, g_raw
