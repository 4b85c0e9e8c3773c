"""A model-domain input back into what a person labels and ``edgekit train`` reads.

Serving hands over the prepared input (the exact tensor the model saw). The manifest's
``preprocessing`` is inverted to get the raw domain back:

* ``image``: ``raw = (x - offset) / scale`` (un-inverted when ``invert``), mapped from
  ``raw_range`` to 0-255 and written as a grayscale or RGB PNG of the model's size — the
  same mapping ``edge.runtime`` decodes image files with, so a captured PNG fed back in
  gives the same input (up to 8-bit rounding);
* ``tabular``: ``raw = x * std + mean``, named by the manifest's feature names;
* anything else: the float32 tensor as a ``.npy`` file.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from edge.contract import SampleInput


def sample_input(x: np.ndarray, preprocessing: Mapping[str, Any] | None) -> SampleInput:
    """The raw input for one prepared sample ``x`` (with or without its batch axis)."""
    pre = preprocessing or {}
    sample = np.asarray(x, dtype=np.float32)
    if sample.ndim >= 1 and sample.shape[0] == 1:
        sample = sample[0]
    kind = pre.get("kind")
    if kind == "image":
        png = _png(sample, pre)
        if png is not None:
            return SampleInput(kind="image", data=png, media_type="image/png")
    elif kind == "tabular" and sample.ndim == 1:
        return _tabular(sample, pre)
    return array_input(sample)


def array_input(sample: np.ndarray) -> SampleInput:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(sample, dtype=np.float32), allow_pickle=False)
    return SampleInput(
        kind="array", data=buf.getvalue(), dtype="float32", shape=tuple(sample.shape)
    )


def _png(sample: np.ndarray, pre: Mapping[str, Any]) -> bytes | None:
    """PNG bytes of an (H, W, 1|3) or (H, W) image sample; None when it is none of those
    or Pillow is missing (the sample is then kept as an array)."""
    if sample.ndim == 3 and sample.shape[-1] in (1, 3):
        channels = sample.shape[-1]
    elif sample.ndim == 2:
        channels = 1
    else:
        return None
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is part of edgekit[edge]
        return None
    lo, hi = (float(v) for v in pre.get("raw_range", (0.0, 255.0)))
    scale = float(pre.get("scale", 1.0)) or 1.0
    raw = (sample.astype(np.float64) - float(pre.get("offset", 0.0))) / scale
    if pre.get("invert"):
        raw = lo + hi - raw
    span = (hi - lo) or 1.0
    pixels = np.clip(np.rint((raw - lo) / span * 255.0), 0, 255).astype(np.uint8)
    if channels == 1:
        img = Image.fromarray(pixels.reshape(pixels.shape[0], pixels.shape[1]), mode="L")
    else:
        img = Image.fromarray(pixels, mode="RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def _tabular(sample: np.ndarray, pre: Mapping[str, Any]) -> SampleInput:
    mean = np.asarray(pre.get("mean", 0.0), dtype=np.float64)
    std = np.asarray(pre.get("std", 1.0), dtype=np.float64)
    raw = sample.astype(np.float64) * np.where(std == 0, 1.0, std) + mean
    names = list(pre.get("features") or [])
    if len(names) != raw.size:
        names = [f"f{i}" for i in range(raw.size)]
    values = [float(f"{v:.7g}") for v in raw.tolist()]  # float32 precision, no float noise
    return SampleInput(kind="tabular", features=dict(zip(names, values, strict=True)))
