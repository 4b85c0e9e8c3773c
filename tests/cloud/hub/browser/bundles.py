"""The bundles the browser tests upload: tests.bundles' tiny ONNX digits classifier.

The model is a genuine ONNX graph (Flatten -> MatMul -> Add -> Softmax) that ONNX Runtime
runs, with a golden set computed by ONNX Runtime itself, so agents can install it for real.
The model card carries an HTML/script payload to prove the web page renders cards safely.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from tests.bundles import make_bundle as make_onnx_bundle
from tests.bundles import make_onnx

LABELS = [str(i) for i in range(10)]
PREPROCESSING = {
    "kind": "image", "height": 8, "width": 8, "channels": 1, "color": "grayscale",
    "layout": "NHWC", "raw_range": [0, 16], "scale": 1 / 16, "offset": 0, "invert": False,
}  # fmt: skip
XSS_MARKER = "<script>window.__cardXss = 1</script>"


def _chart_png() -> bytes:
    img = Image.new("RGB", (120, 60), "white")
    for x in range(10, 110):
        img.putpixel((x, 50 - (x - 10) // 3), (37, 99, 235))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_bundle(out: Path, private_key: Path, version: int, name: str = "digits") -> Path:
    """Write a signed ``name`` bundle of ``version`` to ``out`` and return the path."""
    rng = np.random.default_rng(100 + version)
    x = (rng.integers(0, 17, (16, 8, 8, 1)) / 16.0).astype(np.float32)
    # the same deterministic graph make_onnx_bundle builds, to report its real size
    size = make_onnx(out.parent / f".{out.stem}-size.onnx", seed=version).stat().st_size
    variants = [
        {"target": "onnxruntime-fp32", "runtime": "onnxruntime", "precision": "fp32",
         "included": True, "reason": "", "accuracy": 0.91 + version / 100, "agreement": 1.0,
         "latency_ms": 0.05, "latency_p95_ms": 0.08, "size": size, "error": None},
        {"target": "litert-int8", "runtime": "litert", "precision": "int8", "included": False,
         "reason": "left out for the test: not built", "accuracy": None, "agreement": None,
         "latency_ms": None, "latency_p95_ms": None, "size": None,
         "error": "converter not run in tests", "failed_step": "convert"},
    ]  # fmt: skip
    card = (
        f"# {name} v{version}\n\nA tiny linear digits classifier {XSS_MARKER} for tests.\n\n"
        "## Variants\n\n| variant | accuracy |\n|---|---:|\n"
        f"| onnxruntime-fp32 | {variants[0]['accuracy']:.2f} |\n\n"
        "![accuracy chart](charts/accuracy.png)\n\n"
        "[bad link](javascript:alert(1)) <img src=x onerror=alert(1)>\n"
    )
    return make_onnx_bundle(
        out,
        private_key,
        version=version,
        name=name,
        seed=version,
        golden_x=x,
        golden_labels=True,
        metrics={"accuracy": variants[0]["accuracy"], "latency_ms": 0.05},
        files={
            "model_card.md": card.encode(),
            "charts/accuracy.png": _chart_png(),
            "report.json": json.dumps({"variants": variants}).encode(),
        },
        lineage={"metrics": {"test_accuracy": variants[0]["accuracy"], "val_accuracy": 0.9}},
    )
