"""Checks that turn an unusable dataset into one clear line instead of a bad model."""

from __future__ import annotations

import numpy as np

from cloud.data.dataset import Dataset
from cloud.data.split import MIN_PER_CLASS
from edge.errors import DataError


def validate(ds: Dataset, min_per_class: int = MIN_PER_CLASS) -> None:
    """Refuse non-finite values, fewer than two classes and classes too small to split."""
    where = ds.source
    if len(ds.x) == 0:
        raise DataError(f"{where}: no samples")
    if len(ds.x) != len(ds.y):
        raise DataError(f"{where}: {len(ds.x)} samples but {len(ds.y)} labels")
    bad = ~np.isfinite(ds.x)
    n_bad = int(bad.sum())
    if n_bad:
        raise DataError(f"{where}: {n_bad} NaN/inf/missing values {_where_bad(ds, bad)}")
    counts = ds.class_counts()
    present = {k: v for k, v in counts.items() if v > 0}
    if len(present) < 2:
        only = ", ".join(f"{k!r}" for k in present) or "none"
        raise DataError(f"{where}: need at least 2 classes, found {len(present)} ({only})")
    small = [(k, v) for k, v in counts.items() if v < min_per_class]
    if small:
        listed = ", ".join(f"{k!r} has {v}" for k, v in small[:5])
        more = f" (and {len(small) - 5} more)" if len(small) > 5 else ""
        raise DataError(
            f"{where}: classes too small to split into train/val/test: {listed}{more}; "
            f"each class needs at least {min_per_class} samples"
        )


def _where_bad(ds: Dataset, bad: np.ndarray) -> str:
    if ds.kind == "tabular":
        per_col = bad.sum(axis=0)
        names = ds.feature_names or [f"f{i}" for i in range(bad.shape[1])]
        cols = [f"{names[i]} ({int(per_col[i])})" for i in np.flatnonzero(per_col)]
        shown = ", ".join(cols[:8]) + (f", ... ({len(cols)} columns)" if len(cols) > 8 else "")
        return f"in columns {shown}"
    per_sample = bad.reshape(len(bad), -1).any(axis=1)
    return f"in {int(per_sample.sum())} images (first: sample #{int(np.argmax(per_sample))})"
