"""How the test fixtures describe a digits model: sklearn's 8x8 images, grey levels 0..16.

One definition for the run-dir fixture, the ONNX bundle factory and the input tests, so
they all exercise the preprocessing that ``edgekit train`` writes for digits. Plain data:
importing it needs no TensorFlow.
"""

from __future__ import annotations

from typing import Any

DIGITS_LABELS = [str(d) for d in range(10)]
DIGITS_PREPROCESSING: dict[str, Any] = {
    "kind": "image",
    "height": 8,
    "width": 8,
    "channels": 1,
    "color": "grayscale",
    "layout": "NHWC",
    "raw_range": [0, 16],
    "scale": 1 / 16,
    "offset": 0.0,
    "invert": False,
}
