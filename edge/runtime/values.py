"""Numbers from JSON and numpy values: coercion to float32, and messages that say in JSON
terms (a string, true/false, null) which value is not a number, never a numpy dtype name.
Shared by edge/runtime/inputs.py and edge/runtime/images.py."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edge.errors import InputError

MAX_SCAN = 100_000  # values looked at to name the first non-number of a list


def all_finite(x: np.ndarray) -> bool:
    """No NaN or inf, in two reductions and no temporary array (min/max propagate NaN):
    on a 224x224x3 image this is several times cheaper than ``np.isfinite(x).all()``."""
    return x.size == 0 or bool(np.isfinite(x.min()) and np.isfinite(x.max()))


def to_array(raw: Any) -> np.ndarray:
    if isinstance(raw, np.ndarray):
        arr = raw
    else:
        try:
            arr = np.asarray(raw)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise InputError("shape", f"input is not a rectangular array: {exc}") from exc
    if arr.dtype == object:
        found = first_non_number(raw) if isinstance(raw, (list, tuple)) else None
        if found is not None and found[0]:
            raise not_numbers(raw, "O")
        if found is None and isinstance(raw, (list, tuple)):  # numbers, some huge ints
            raise InputError("range", "a value is too large for the model (over 3.4e38)")
        raise InputError("shape", "input is not a rectangular array of numbers")
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise not_numbers(raw, arr.dtype.kind)
    if arr.dtype == np.float32:
        return arr  # nothing to convert or overflow; prepare() never writes into it
    if arr.dtype.kind in "iu":  # |int| < 2**64 always fits float32 (camera frames: uint8)
        return arr.astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(np.float32)
    overflow = np.isinf(out) & np.isfinite(arr)
    if overflow.any():
        raise InputError(
            "range", f"{int(overflow.sum())} value(s) too large for the model (over 3.4e38)"
        )
    return out


_KIND_NAMES = {"U": "strings", "S": "strings", "b": "true/false values", "c": "complex numbers"}


def describe_value(value: Any) -> str:
    """A value's type in JSON terms, for messages."""
    if isinstance(value, (bool, np.bool_)):
        return "true/false"
    if isinstance(value, (str, bytes, np.str_)):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, (complex, np.complexfloating)):
        return "a complex number"
    return f"a {type(value).__name__}"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def first_non_number(raw: Any) -> tuple[str, Any] | None:
    """``("[i][j]", value)`` of the first value of nested lists that is not a number."""
    stack: list[tuple[str, Any]] = [("", raw)]
    seen = 0
    while stack and seen < MAX_SCAN:
        path, item = stack.pop()
        seen += 1
        if isinstance(item, (list, tuple)):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(item))))
        elif not is_number(item):
            return path, item
    return None


def not_numbers(raw: Any, kind: str) -> InputError:
    """InputError("dtype") naming where the first non-number is (for lists)."""
    found = first_non_number(raw) if isinstance(raw, (list, tuple)) else None
    if found is not None and found[0]:
        return InputError(
            "dtype", f"input values must be numbers; value {found[0]} is {describe_value(found[1])}"
        )
    return InputError(
        "dtype", f"input values must be numbers, got {_KIND_NAMES.get(kind, 'non-numbers')}"
    )


def check_finite(x: np.ndarray) -> None:
    if all_finite(x):
        return
    bad = ~np.isfinite(x)
    if bad.any():
        n_nan = int(np.isnan(x).sum())
        kind = f"{n_nan} NaN" if n_nan else f"{int(bad.sum())} infinite"
        raise InputError("nan", f"input has {kind} value(s)")
