"""Image inputs: arrays and encoded files to raw pixels of the model's size, the raw-range
check, and the affine formula (``model_input = raw * scale + offset``) with its fast bounds.

An array of another size is resized only when it looks like an image (``image_like``); a
row of values is never stretched into one (edge/runtime/inputs.py then refuses its shape).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from edge.errors import InputError
from edge.runtime.values import all_finite, to_array

RANGE_SLACK = 1e-4  # relative to the raw range: tolerate float rounding at the edges
MIN_IMAGE_SIDE = 2  # an array with a side of 1 is a row of values, not an image to resize
MAX_ASPECT_CHANGE = 4.0  # resizing may stretch an image's aspect ratio at most this much


def fast_bounds(pre: Mapping[str, Any]) -> tuple[float, float] | None:
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


def image_raw(pre: Mapping[str, Any], raw: Any, sample_shape: tuple[int, ...]) -> np.ndarray:
    h, w, c = int(pre["height"]), int(pre["width"]), int(pre.get("channels", 1))
    lo, hi = (float(v) for v in pre.get("raw_range", (0.0, 255.0)))
    if isinstance(raw, bytes):
        return decode_image(bytes(raw), getattr(raw, "name", "image"), h, w, c, lo, hi, pre)[None]
    x = to_array(raw)
    if c == 1 and x.ndim == 2 and x.shape[1] != h * w and image_like(x.shape, h, w):
        x = x[..., None]  # one grayscale image (any size) without its channel axis
    elif c == 1 and x.ndim == 3 and x.shape[-1] != 1 and x.shape[1:] == (h, w):
        x = x[..., None]  # a batch of grayscale images without their channel axis
    other_size = x.ndim in (3, 4) and x.shape[-1] == c and x.shape[-3:-1] != (h, w)
    if other_size and image_like(x.shape[-3:-1], h, w):
        x = resize_array(x, h, w)
    return x  # anything else is for _fit_shape to take as it is or refuse


def image_like(hw: tuple[int, ...], h: int, w: int) -> bool:
    """Whether an array of height x width ``hw`` may be resized to ``h`` x ``w``: it is
    (h, w) already, or both sides are at least MIN_IMAGE_SIDE and the aspect ratio changes
    by at most MAX_ASPECT_CHANGE. A row of values (``[[v0, ..., v59]]``) is not an image."""
    rows, cols = hw
    if (rows, cols) == (h, w):
        return True
    if min(rows, cols) < MIN_IMAGE_SIDE:
        return False
    change = (rows / cols) / (h / w)
    return max(change, 1 / change) <= MAX_ASPECT_CHANGE


def image_in_range_fast(pre: Mapping[str, Any], x: np.ndarray) -> np.ndarray | None:
    """The model-domain values of raw pixels ``x`` when all of them are finite and
    inside the raw range with a safety margin, else None (then the exact checks run).

    The hot path of every image inference: one pass over the (cache-cold) input to apply
    the formula and a min and a max over the (cache-hot) result, instead of separate
    NaN, range and overflow passes over the input. NaN and inf survive the affine
    formula and fail the bounds; the margin (far above float32 rounding of the formula,
    far below ``RANGE_SLACK``) makes acceptance imply what the exact checks test."""
    bounds = fast_bounds(pre) if x.size else None
    if bounds is None:
        return None
    low, high = bounds
    with np.errstate(over="ignore", invalid="ignore"):  # such inputs fail the bounds
        out = image_formula(pre, x)
    if low <= float(out.min()) and float(out.max()) <= high:  # False for NaN
        return out
    return None


def check_image_range(pre: Mapping[str, Any], x: np.ndarray) -> None:
    """InputError("range") when a finite pixel lies outside the raw range."""
    lo, hi = (float(v) for v in pre.get("raw_range", (0.0, 255.0)))
    span = hi - lo
    # min/max of the finite values; the masked copy is made only when NaN/inf are present
    finite = x if all_finite(x) else x[np.isfinite(x)]
    if finite.size:
        vmin, vmax = float(finite.min()), float(finite.max())
        if vmin < lo - RANGE_SLACK * span or vmax > hi + RANGE_SLACK * span:
            raise InputError(
                "range",
                f"pixel values {vmin:g}..{vmax:g} are outside the model's raw range {lo:g}..{hi:g}",
            )


def resize_array(x: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    batch = x if x.ndim == 4 else x[None]
    out = np.empty((batch.shape[0], h, w, batch.shape[-1]), dtype=np.float32)
    for i in range(batch.shape[0]):
        for ch in range(batch.shape[-1]):
            img = Image.fromarray(np.ascontiguousarray(batch[i, :, :, ch]), mode="F")
            out[i, :, :, ch] = np.asarray(img.resize((w, h), Image.Resampling.BILINEAR))
    return out if x.ndim == 4 else out[0]


def decode_image(
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


def image_formula(pre: Mapping[str, Any], x: np.ndarray) -> np.ndarray:
    scale = np.float32(pre.get("scale", 1.0))
    offset = np.float32(pre.get("offset", 0.0))
    out = np.multiply(x, scale, dtype=np.float32)  # a new array: the caller's is untouched
    if offset:
        out += offset
    return out
