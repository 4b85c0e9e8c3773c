"""The group column: a per-sample attribute kept out of the features, for metrics per group.

A model card should say whether the model is as good for every group it serves (sensor
site, region, age band, ...), not only on average. The group values are read with the data,
never fed to the model, and travel beside the splits to the exporter. A column that is
really an identifier (all values distinct) or has so many values that each group holds a
handful of test rows cannot give per-group numbers that mean anything, so it is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.errors import DataError

MISSING_GROUP = "(missing)"
MAX_GROUPS = 50
MAX_GROUP_NAME = 100  # characters; longer values are refused (a group is a category name)


def group_values(raw: Sequence[object] | np.ndarray, column: str, where: str) -> np.ndarray:
    """Group names as a numpy unicode array; empty or NaN values become ``(missing)``.

    Numbers keep their spelling (``3`` and ``3.0`` are written as read from a CSV); an
    ``.npz`` array of integers becomes their decimal strings.
    """
    arr = np.asarray(raw)
    if arr.ndim != 1:
        raise DataError(f"{where}: group column {column!r} must be 1-D, got shape {arr.shape}")
    if arr.dtype.kind not in "iubfUS":
        raise DataError(
            f"{where}: group column {column!r} must hold strings or numbers, got {arr.dtype.kind!r}"
        )
    if arr.dtype.kind == "f":
        names = [MISSING_GROUP if not np.isfinite(v) else _number(float(v)) for v in arr.tolist()]
    elif arr.dtype.kind == "S":
        names = [v.decode("utf-8", "replace").strip() for v in arr.tolist()]
    else:
        names = [str(v).strip() for v in arr.tolist()]
    names = [MISSING_GROUP if n == "" or n.lower() == "nan" else n for n in names]
    long = [n for n in names if len(n) > MAX_GROUP_NAME]
    if long:
        raise DataError(
            f"{where}: group column {column!r} has values longer than {MAX_GROUP_NAME} "
            f"characters (e.g. {long[0][:40]!r}...); use short category names"
        )
    values = np.asarray(names, dtype=np.str_)
    check_groups(values, column, where)
    return values


def check_groups(values: np.ndarray, column: str, where: str) -> None:
    """Refuse identifier-like or high-cardinality group columns, naming the counts."""
    uniq = np.unique(values)
    n = len(values)
    if n >= 2 and len(uniq) == n:
        raise DataError(
            f"{where}: group column {column!r} has a different value in every one of the {n} "
            "rows: it looks like an identifier, not a group (drop it with --exclude-columns)"
        )
    if len(uniq) > MAX_GROUPS:
        raise DataError(
            f"{where}: group column {column!r} has {len(uniq)} distinct values, more than "
            f"{MAX_GROUPS}: per-group metrics would rest on a few rows each; bin it into "
            "fewer groups first"
        )
    if len(uniq) < 2:
        only = str(uniq[0]) if len(uniq) else "none"
        raise DataError(
            f"{where}: group column {column!r} has a single value ({only!r}): nothing to compare"
        )


def group_counts(values: np.ndarray) -> dict[str, int]:
    """Rows per group, in sorted group order (for run.json and the card)."""
    uniq, counts = np.unique(values, return_counts=True)
    return {str(g): int(c) for g, c in zip(uniq, counts, strict=True)}


def _number(v: float) -> str:
    return str(int(v)) if v == round(v) and abs(v) < 1e15 else repr(v)
