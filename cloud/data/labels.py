"""Turn arbitrary label columns (ints, strings, integral floats) into indices plus names."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.errors import DataError


def encode_labels(
    values: Sequence[object] | np.ndarray, where: str
) -> tuple[np.ndarray, list[str]]:
    """Map raw labels to ``(indices int64, names)``.

    Integer labels sort numerically (so ``2 < 10``) and keep their spelling as names;
    string labels sort lexicographically. Integral floats (``3.0``) count as integers,
    because CSV readers and numpy often produce them. Anything else is refused.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise DataError(f"{where}: labels must be one-dimensional, got shape {list(arr.shape)}")
    if arr.size == 0:
        raise DataError(f"{where}: no samples")
    if arr.dtype.kind in "iub":
        ints = arr.astype(np.int64)
    elif arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError(
                f"{where}: labels must be integers or strings, found non-integral numbers"
            )
        ints = arr.astype(np.int64)
    elif arr.dtype.kind in "US":
        strs = [str(v) for v in arr.tolist()]
        as_ints = _try_ints(strs)
        if as_ints is not None:
            ints = np.asarray(as_ints, dtype=np.int64)
        else:
            names = sorted(set(strs))
            index = {name: i for i, name in enumerate(names)}
            return np.asarray([index[s] for s in strs], dtype=np.int64), names
    else:
        raise DataError(f"{where}: labels must be integers or strings, got dtype {arr.dtype}")
    uniq = np.unique(ints)
    positions = {int(v): i for i, v in enumerate(uniq)}
    y = np.asarray([positions[int(v)] for v in ints], dtype=np.int64)
    return y, [str(int(v)) for v in uniq]


def _try_ints(values: list[str]) -> list[int] | None:
    """Integers spelled as text (``"3"``, ``" 7 "``, ``"2.0"``), or None if any is not one."""
    out: list[int] = []
    for v in values:
        s = v.strip()
        try:
            out.append(int(s))
            continue
        except ValueError:
            pass
        try:
            f = float(s)
        except ValueError:
            return None
        if not np.isfinite(f) or f != round(f):
            return None
        out.append(int(f))
    return out
