"""A PNG preview of an image-like ``.npy`` sample (``(H, W)``, ``(H, W, 1|3)``, with any
leading 1-sized axes), so the labeling page shows array inputs as thumbnails too."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

MAX_SIDE = 4096


def array_png(data: bytes) -> bytes | None:
    """The array scaled to 0-255 as a PNG, or None when it does not look like an image."""
    try:
        arr = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None
    if arr.dtype.kind not in "biuf":
        return None
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3):
        return None
    if not 0 < arr.shape[0] <= MAX_SIDE or not 0 < arr.shape[1] <= MAX_SIDE:
        return None
    values = np.nan_to_num(arr.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(values.min()), float(values.max())
    scaled = (values - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(values)
    out = io.BytesIO()
    Image.fromarray(scaled.round().astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()
