"""The exact raw -> model-domain transform, written into the manifest's ``preprocessing``.

The model itself takes model-domain float32 inputs, so every runtime (LiteRT, ONNX,
OpenVINO) and the int8 quantiser see the same well-scaled tensor; the device applies the
recorded transform in numpy (edge/runtime/inputs.py) with no guesswork. See interfaces.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cloud.data.dataset import Dataset
from edge.errors import DataError


def fit_preprocessing(ds: Dataset, train_idx: np.ndarray) -> dict[str, Any]:
    """Describe the transform for ``ds``; tabular statistics come from the train split only."""
    if ds.kind == "image":
        if ds.raw_range is None:
            raise DataError(f"{ds.source}: image data without a raw value range")
        lo, hi = (float(v) for v in ds.raw_range)
        scale = 1.0 / (hi - lo)
        _, h, w, c = ds.x.shape
        return {
            "kind": "image",
            "height": int(h),
            "width": int(w),
            "channels": int(c),
            "color": "grayscale" if c == 1 else "rgb",
            "layout": "NHWC",
            "raw_range": [lo, hi],
            "scale": scale,
            "offset": 0.0 - lo * scale,  # maps raw_range onto [0, 1] (and never -0.0)
            "invert": False,
        }
    train = ds.x[train_idx].astype(np.float64)
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    std[std < 1e-12] = 1.0  # a constant feature carries no signal; keep it harmless
    return {
        "kind": "tabular",
        "features": list(ds.feature_names or [f"f{i}" for i in range(ds.x.shape[1])]),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
    }


def apply_preprocessing(spec: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """Raw batch -> model-domain float32 batch, exactly as described by ``spec``."""
    if spec["kind"] == "image":
        out = x.astype(np.float32)
        if spec.get("invert"):
            lo, hi = spec["raw_range"]
            out = (lo + hi) - out
        return (out * np.float32(spec["scale"]) + np.float32(spec["offset"])).astype(np.float32)
    mean = np.asarray(spec["mean"], dtype=np.float64)
    std = np.asarray(spec["std"], dtype=np.float64)
    return ((x.astype(np.float64) - mean) / std).astype(np.float32)
