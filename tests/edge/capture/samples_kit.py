"""Valid samples of every input kind, for the contract, store and uploader tests."""

from __future__ import annotations

import base64
import io
import uuid
from typing import Any

import numpy as np

from edge.contract import SCHEMA_SAMPLES, Sample


def png_bytes(seed: int = 0, size: int = 8) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8), mode="L")
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def npy_bytes(shape: tuple[int, ...] = (8, 8, 1)) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.zeros(shape, np.float32))
    return buf.getvalue()


def sample_dict(kind: str = "image", **over: Any) -> dict[str, Any]:
    inputs: dict[str, dict[str, Any]] = {
        "image": {"kind": "image", "media_type": "image/png",
                  "data": base64.b64encode(png_bytes()).decode()},
        "tabular": {"kind": "tabular", "features": {"petal_length": 1.4, "petal_width": None}},
        "array": {"kind": "array", "dtype": "float32", "shape": [8, 8, 1],
                  "data": base64.b64encode(npy_bytes()).decode()},
    }  # fmt: skip
    obj: dict[str, Any] = {
        "id": uuid.uuid4().hex,
        "captured_at": 1733330000.5,
        "reason": "low_confidence",
        "model": {"name": "digits", "version": 2},
        "prediction": {"label": "7", "index": 1, "scores": [0.45, 0.55]},
        "known_label": "7",
        "shadow": None,
        "input": inputs[kind],
    }
    obj.update(over)
    return obj


def sample(kind: str = "image", **over: Any) -> Sample:
    return Sample.from_dict(sample_dict(kind, **over))


def batch_dict(samples: list[dict[str, Any]], device: str = "demo-01") -> dict[str, Any]:
    return {"schema": SCHEMA_SAMPLES, "device": device, "samples": samples}
