"""Validate and coerce inference inputs against a manifest, into a model-domain batch.

``prepare(manifest, raw)`` returns the float32 batch the model takes, shape
``[N, *manifest.inputs[0].shape[1:]]``. Raw inputs are in the *raw* domain the manifest's
``preprocessing`` describes (pixels in ``raw_range``, tabular features in their units);
the formula there turns them into model inputs.

Safe coercions (documented in docs/runtimes.md): float64 and integers to float32; a flat
list of exactly one sample's length reshaped; one sample given a batch dimension; an image
(file or array) of another size resized bilinearly; a 2-D grayscale image given its
channel axis; named features reordered. Anything else is an InputError with a ``code``:
``shape``, ``dtype``, ``nan``, ``range``, ``missing_field``, ``extra_field``, ``decode``.
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

MAX_INPUT_FILE_BYTES = 64 * 1024 * 1024
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pgm", ".ppm"}
RANGE_SLACK = 1e-4  # relative to the raw range: tolerate float rounding at the edges


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
        x = _image_raw(pre, raw, sample_shape)
        fast = _image_in_range_fast(pre, x)
        if fast is not None:  # every value clearly valid: no other check can fail
            return np.ascontiguousarray(_fit_shape(fast, sample_shape))
        _check_image_range(pre, x)
    else:
        if isinstance(raw, bytes):
            raise InputError("decode", "this model takes arrays, not encoded images")
        x = _to_array(raw)
    x = _fit_shape(x, sample_shape)
    _check_finite(x)
    if kind == "image":
        x = _image_formula(pre, x)
    elif kind == "tabular":
        mean = np.asarray(pre.get("mean", 0.0), dtype=np.float32)
        std = np.asarray(pre.get("std", 1.0), dtype=np.float32)
        x = (x - mean) / np.where(std == 0, np.float32(1), std)
    out = np.ascontiguousarray(x, dtype=np.float32)
    if isinstance(raw, np.ndarray) and np.may_share_memory(out, raw):
        out = out.copy()  # the batch is ours: the caller may reuse its array
    if not _all_finite(out):
        raise InputError("range", "input overflows float32 after preprocessing")
    return out


class Preparer:
    """``prepare`` bound to one manifest, with a fast path for the commonest input.

    Serving calls this on every inference, right after the previous one evicted the CPU
    caches, where the generic path's Python (dict lookups, shape rules, bounds computed
    per call) cost ~60 us on its own. Here the constants are computed once, and an image
    array of exactly one sample (float32 or uint8, with or without the batch axis) takes
    one formula, a min and a max; anything else, or a value the fast bounds cannot vouch
    for, goes through :func:`prepare`, so codes and messages are the same."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self._shapes: tuple[tuple[int, ...], ...] = ()
        pre = manifest.preprocessing or {}
        sample = tuple(manifest.inputs[0].shape[1:])
        bounds = _fast_bounds(pre) if pre.get("kind") == "image" else None
        if bounds is None or any(s <= 0 for s in sample):
            return
        self._lo, self._hi = bounds
        self._scale = np.float32(pre.get("scale", 1.0))
        self._offset = np.float32(pre.get("offset", 0.0))
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
            out += self._offset
        return self._lo <= float(out.min()) and float(out.max()) <= self._hi  # False for NaN

    def __call__(self, raw: Any) -> np.ndarray:
        if self.fits(raw):
            out = np.empty(self._batch_shape, dtype=np.float32)
            if self.fill(raw, out[0]):
                return out
        return prepare(self.manifest, raw)


def _fast_bounds(pre: Mapping[str, Any]) -> tuple[float, float] | None:
    """Model-domain bounds inside which every value is a finite raw pixel within the raw
    range: the range plus ``RANGE_SLACK`` through the formula, shrunk by a margin far above
    float32 rounding of the formula and far below the slack. None when the formula cannot
    vouch for the range (a zero scale, or bounds that overflow)."""
    lo, hi = (float(v) for v in pre.get("raw_range", (0.0, 255.0)))
    scale = float(np.float32(pre.get("scale", 1.0)))
    offset = float(np.float32(pre.get("offset", 0.0)))
    if scale == 0.0 or not math.isfinite(lo * scale + hi * scale + offset):
        return None
    slack = RANGE_SLACK * (hi - lo)
    ends = ((lo - slack) * scale + offset, (hi + slack) * scale + offset)
    margin = 1e-6 * (max(abs(lo), abs(hi), slack) * abs(scale) + abs(offset))
    return min(ends) + margin, max(ends) - margin


def _all_finite(x: np.ndarray) -> bool:
    """No NaN or inf, in two reductions and no temporary array (min/max propagate NaN):
    on a 224x224x3 image this is several times cheaper than ``np.isfinite(x).all()``."""
    return x.size == 0 or bool(np.isfinite(x.min()) and np.isfinite(x.max()))


def _to_array(raw: Any) -> np.ndarray:
    if isinstance(raw, np.ndarray):
        arr = raw
    else:
        try:
            arr = np.asarray(raw)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise InputError("shape", f"input is not a rectangular array: {exc}") from exc
    if arr.dtype == object:
        raise InputError("shape", "input is not a rectangular array of numbers")
    if arr.dtype.kind == "b" or arr.dtype.kind not in "iuf":
        raise InputError("dtype", f"input values must be numbers, got {arr.dtype.name}")
    if arr.dtype == np.float32:
        return arr  # nothing to convert or overflow; prepare() never writes into it
    if arr.dtype.kind in "iu":  # |int| < 2**64 always fits float32 (camera frames: uint8)
        return arr.astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(np.float32)
    overflow = np.isinf(out) & np.isfinite(arr)
    if overflow.any():
        raise InputError("range", f"{int(overflow.sum())} value(s) too large for float32")
    return out


def _check_finite(x: np.ndarray) -> None:
    if _all_finite(x):
        return
    bad = ~np.isfinite(x)
    if bad.any():
        n_nan = int(np.isnan(x).sum())
        kind = f"{n_nan} NaN" if n_nan else f"{int(bad.sum())} infinite"
        raise InputError("nan", f"input has {kind} value(s)")


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
    return _to_array(raw)


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
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InputError("dtype", f"feature {f!r} must be a number, got {type(v).__name__}")
        values.append(float(v))
    return np.asarray(values, dtype=np.float32)


# ---------------------------------------------------------------- images


def _image_raw(pre: Mapping[str, Any], raw: Any, sample_shape: tuple[int, ...]) -> np.ndarray:
    h, w, c = int(pre["height"]), int(pre["width"]), int(pre.get("channels", 1))
    lo, hi = (float(v) for v in pre.get("raw_range", (0.0, 255.0)))
    if isinstance(raw, bytes):
        return _decode_image(bytes(raw), getattr(raw, "name", "image"), h, w, c, lo, hi, pre)[None]
    x = _to_array(raw)
    if c == 1 and x.ndim == 2 and x.shape[1] != h * w:
        x = x[..., None]  # one grayscale image (any size) without its channel axis
    elif c == 1 and x.ndim == 3 and x.shape[-1] != 1 and x.shape[1:] == (h, w):
        x = x[..., None]  # a batch of grayscale images without their channel axis
    if x.ndim in (3, 4) and x.shape[-1] == c and x.shape[-3:-1] != (h, w):
        x = _resize_array(x, h, w)
    return x


def _image_in_range_fast(pre: Mapping[str, Any], x: np.ndarray) -> np.ndarray | None:
    """The model-domain values of raw pixels ``x`` when all of them are finite and
    inside the raw range with a safety margin, else None (then the exact checks run).

    The hot path of every image inference: one pass over the (cache-cold) input to apply
    the formula and a min and a max over the (cache-hot) result, instead of separate
    NaN, range and overflow passes over the input. NaN and inf survive the affine
    formula and fail the bounds; the margin (far above float32 rounding of the formula,
    far below ``RANGE_SLACK``) makes acceptance imply what the exact checks test."""
    bounds = _fast_bounds(pre) if x.size else None
    if bounds is None:
        return None
    low, high = bounds
    with np.errstate(over="ignore", invalid="ignore"):  # such inputs fail the bounds
        out = _image_formula(pre, x)
    if low <= float(out.min()) and float(out.max()) <= high:  # False for NaN
        return out
    return None


def _check_image_range(pre: Mapping[str, Any], x: np.ndarray) -> None:
    """InputError("range") when a finite pixel lies outside the raw range."""
    lo, hi = (float(v) for v in pre.get("raw_range", (0.0, 255.0)))
    span = hi - lo
    # min/max of the finite values; the masked copy is made only when NaN/inf are present
    finite = x if _all_finite(x) else x[np.isfinite(x)]
    if finite.size:
        vmin, vmax = float(finite.min()), float(finite.max())
        if vmin < lo - RANGE_SLACK * span or vmax > hi + RANGE_SLACK * span:
            raise InputError(
                "range",
                f"pixel values {vmin:g}..{vmax:g} are outside the model's raw range {lo:g}..{hi:g}",
            )


def _resize_array(x: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    batch = x if x.ndim == 4 else x[None]
    out = np.empty((batch.shape[0], h, w, batch.shape[-1]), dtype=np.float32)
    for i in range(batch.shape[0]):
        for ch in range(batch.shape[-1]):
            img = Image.fromarray(np.ascontiguousarray(batch[i, :, :, ch]), mode="F")
            out[i, :, :, ch] = np.asarray(img.resize((w, h), Image.Resampling.BILINEAR))
    return out if x.ndim == 4 else out[0]


def _decode_image(
    data: bytes,
    name: str,
    h: int,
    w: int,
    c: int,
    lo: float,
    hi: float,
    pre: Mapping[str, Any],
) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            if img.width * img.height > 64_000_000:
                raise InputError(
                    "decode", f"{name}: image of {img.width}x{img.height} is too large"
                )
            converted = img.convert("L" if c == 1 else "RGB")
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError("decode", f"{name} is not a readable image: {exc}") from exc
    resized = converted.resize((w, h), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.float32).reshape(h, w, c)
    raw = lo + pixels / 255.0 * (hi - lo)
    if pre.get("invert"):
        raw = lo + hi - raw
    return raw


def _image_formula(pre: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    scale = np.float32(pre.get("scale", 1.0))
    offset = np.float32(pre.get("offset", 0.0))
    out = np.multiply(x, scale, dtype=np.float32)  # a new array: the caller's is untouched
    if offset:
        out += offset
    return out
