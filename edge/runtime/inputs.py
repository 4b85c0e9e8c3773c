"""Validate and coerce inference inputs against a manifest, into a model-domain batch.

``prepare(manifest, raw)`` returns the float32 batch the model takes, shape
``[N, *manifest.inputs[0].shape[1:]]``. Raw inputs are in the *raw* domain the manifest's
``preprocessing`` describes (pixels in ``raw_range``, tabular features in their units);
the formula there turns them into model inputs.

Safe coercions (documented in docs/runtimes.md): float64, integers and numpy scalars to
float32; a flat list of exactly one sample's length reshaped; one sample given a batch
dimension; an image (file or array) of another size resized bilinearly when it looks like
an image (edge/runtime/images.py: both sides at least 2, aspect ratio within 4x
of the model's); a 2-D grayscale image given its channel axis; named features reordered.
Nothing is reinterpreted: a row of values of the wrong length is never taken for an image.
Anything else is an InputError with a ``code``: ``shape``, ``dtype``, ``nan``, ``range``,
``missing_field``, ``extra_field``, ``decode``; messages name the offending field or
position in JSON terms (a string, true/false), never a numpy dtype.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import Manifest
from edge.errors import InputError
from edge.runtime.images import (
    check_image_range,
    fast_bounds,
    image_formula,
    image_in_range_fast,
    image_raw,
)
from edge.runtime.values import all_finite, check_finite, describe_value, is_number, to_array

MAX_INPUT_FILE_BYTES = 64 * 1024 * 1024
FLOAT32_MAX = float(np.finfo(np.float32).max)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}


def load_input_file(path: str | Path) -> Any:
    """Read an input file: an image (decoded later), ``.npy``, or JSON (list or object).

    Images are returned as raw bytes wrapped in :class:`ImageBytes` so ``prepare`` can
    decode them against the manifest's preprocessing.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_INPUT_FILE_BYTES:
            raise InputError("decode", f"{p.name}: {size} bytes is too large for an input")
        data = p.read_bytes()
    except FileNotFoundError as exc:
        raise InputError("decode", f"input file {p} does not exist") from exc
    except IsADirectoryError as exc:
        raise InputError("decode", f"input {p} is a directory, not a file") from exc
    except OSError as exc:
        raise InputError("decode", f"cannot read input {p}: {exc.strerror}") from exc
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            return np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError("decode", f"{p.name} is not a readable .npy array: {exc}") from exc
    if suffix == ".json":
        try:
            obj = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError("decode", f"{p.name} is not valid JSON: {exc}") from exc
        return obj
    if suffix in IMAGE_SUFFIXES or data[:4] in (
        b"\x89PNG",
        b"\xff\xd8\xff\xe0",
        b"\xff\xd8\xff\xe1",
    ):
        return ImageBytes(data, p.name)
    raise InputError("decode", f"{p.name}: unknown input type (use an image, .npy or .json)")


class ImageBytes(bytes):
    """Encoded image bytes (PNG, JPEG, ...) still to be decoded for the model."""

    name: str

    def __new__(cls, data: bytes, name: str = "image") -> ImageBytes:
        obj = super().__new__(cls, data)
        obj.name = name
        return obj


def prepare(manifest: Manifest, raw: Any) -> np.ndarray:
    """The model-domain float32 batch for ``raw``, or InputError(code, message)."""
    spec = manifest.inputs[0]
    sample_shape = tuple(spec.shape[1:])
    pre = manifest.preprocessing or {}
    kind = pre.get("kind", "none")
    if kind == "tabular":
        x = _tabular_raw(pre, raw)
    elif kind == "image":
        x = image_raw(pre, raw, sample_shape)
        fast = image_in_range_fast(pre, x)
        if fast is not None:  # every value clearly valid: no other check can fail
            return np.ascontiguousarray(_fit_shape(fast, sample_shape))
        check_image_range(pre, x)
    else:
        if isinstance(raw, bytes):
            raise InputError("decode", "this model takes arrays, not encoded images")
        x = to_array(raw)
    x = _fit_shape(x, sample_shape)
    check_finite(x)
    if kind == "image":
        x = image_formula(pre, x)
    elif kind == "tabular":
        mean = np.asarray(pre.get("mean", 0.0), dtype=np.float32)
        std = np.asarray(pre.get("std", 1.0), dtype=np.float32)
        x = (x - mean) / np.where(std == 0, np.float32(1), std)
    out = np.ascontiguousarray(x, dtype=np.float32)
    if isinstance(raw, np.ndarray) and np.may_share_memory(out, raw):
        out = out.copy()  # the batch is ours: the caller may reuse its array
    if not all_finite(out):
        raise InputError("range", "input overflows float32 after preprocessing")
    return out


class Preparer:
    """``prepare`` bound to one manifest, with a fast path for the commonest input.

    Serving calls this on every inference, right after the previous one evicted the CPU
    caches, where the generic path's Python (dict lookups, shape rules, bounds computed
    per call) cost ~60 us on its own. Here the constants are computed once, and an image
    array of exactly one sample (float32 or uint8, with or without the batch axis) takes
    one formula, a min and a max (none for uint8 when every byte value maps inside the
    bounds: a camera frame with raw range 0..255); anything else, or a value the fast
    bounds cannot vouch for, goes through :func:`prepare`, so codes and messages are the
    same."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self._shapes: tuple[tuple[int, ...], ...] = ()
        pre = manifest.preprocessing or {}
        sample = tuple(manifest.inputs[0].shape[1:])
        bounds = fast_bounds(pre) if pre.get("kind") == "image" else None
        if bounds is None or any(s <= 0 for s in sample):
            return
        self._lo, self._hi = bounds
        self._scale = np.float32(pre.get("scale", 1.0))
        self._offset = np.float32(pre.get("offset", 0.0))
        ends = np.array([0, 255], np.float32) * self._scale + self._offset  # as fill computes
        self._bytes_in_bounds = bool(self._lo <= ends.min() and ends.max() <= self._hi)
        self._batch_shape = (1, *sample)
        self._shapes = (sample, self._batch_shape)

    def fits(self, raw: Any) -> bool:
        """Whether ``raw`` can take the fast path (its values are checked there)."""
        return (
            type(raw) is np.ndarray
            and raw.shape in self._shapes
            and (raw.dtype == np.float32 or raw.dtype == np.uint8)
        )

    def fill(self, raw: np.ndarray, out: np.ndarray) -> bool:
        """Write the model-domain sample for ``raw`` (which ``fits``) into ``out`` (float32,
        the sample's shape); False when a value is outside what the fast bounds vouch
        for: then :func:`prepare` decides (and names the problem)."""
        np.multiply(raw.reshape(out.shape), self._scale, out=out)
        if self._offset:
            np.add(out, self._offset, out=out)
        if self._bytes_in_bounds and raw.dtype == np.uint8:
            return True  # every possible value maps inside the bounds: nothing to check
        return self._lo <= float(out.min()) and float(out.max()) <= self._hi  # False for NaN

    def __call__(self, raw: Any) -> np.ndarray:
        if self.fits(raw):
            out = np.empty(self._batch_shape, dtype=np.float32)
            if self.fill(raw, out[0]):
                return out
        return prepare(self.manifest, raw)


def _fit_shape(x: np.ndarray, sample_shape: tuple[int, ...]) -> np.ndarray:
    """Reshape a flat sample or add the batch axis; refuse anything ambiguous."""
    size = math.prod(s for s in sample_shape if s > 0)
    dynamic = any(s <= 0 for s in sample_shape)
    if x.ndim == len(sample_shape) + 1 and _matches(x.shape[1:], sample_shape):
        batch = x
    elif _matches(x.shape, sample_shape):
        batch = x[None, ...]
    elif not dynamic and x.ndim == 1 and x.size == size:
        batch = x.reshape((1, *sample_shape))
    elif not dynamic and x.ndim == 2 and x.shape[1] == size and len(sample_shape) > 1:
        batch = x.reshape((x.shape[0], *sample_shape))
    else:
        raise InputError(
            "shape",
            f"input shape {list(x.shape)} does not fit the model input {list(sample_shape)} "
            f"(one sample, a batch, or a flat list of {size} values)",
        )
    if batch.shape[0] < 1:
        raise InputError("shape", "input batch is empty")
    return batch


def _matches(shape: tuple[int, ...], sample_shape: tuple[int, ...]) -> bool:
    return len(shape) == len(sample_shape) and all(
        s <= 0 or g == s for g, s in zip(shape, sample_shape, strict=True)
    )


# ---------------------------------------------------------------- tabular


def _tabular_raw(pre: Mapping[str, Any], raw: Any) -> np.ndarray:
    features: list[str] = list(pre.get("features") or [])
    if isinstance(raw, bytes):
        raise InputError("decode", "this model takes feature values, not an image")
    if isinstance(raw, Mapping):
        return _named_row(raw, features)[None, :]
    if isinstance(raw, list) and raw and all(isinstance(r, Mapping) for r in raw):
        return np.stack([_named_row(r, features) for r in raw])
    return to_array(raw)


def _named_row(row: Mapping[str, Any], features: list[str]) -> np.ndarray:
    if not features:
        raise InputError("extra_field", "this model has no named features; send a list")
    missing = [f for f in features if f not in row]
    if missing:
        raise InputError("missing_field", f"missing feature(s): {', '.join(missing[:5])}")
    extra = sorted(set(row) - set(features))
    if extra:
        raise InputError("extra_field", f"unknown feature(s): {', '.join(map(str, extra[:5]))}")
    values = []
    for f in features:
        v = row[f]
        if not is_number(v):  # numpy scalars (np.float32, np.int64, ...) are numbers
            raise InputError("dtype", f"feature {f!r} must be a number, got {describe_value(v)}")
        try:
            value = float(v)
        except OverflowError:  # a Python int beyond any float
            value = math.inf if v > 0 else -math.inf
        if abs(value) > FLOAT32_MAX and (math.isfinite(value) or isinstance(v, int)):
            raise InputError("range", f"feature {f!r} = {value:g} is too large for the model")
        values.append(value)
    return np.asarray(values, dtype=np.float32)
