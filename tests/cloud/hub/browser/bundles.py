"""Real, signed test bundles without TensorFlow: a tiny ONNX softmax classifier for 8x8 digits.

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

from cloud.bundle import ArtifactSource, GoldenSet, build_bundle
from edge.contract import TensorSpec

LABELS = [str(i) for i in range(10)]
PREPROCESSING = {
    "kind": "image", "height": 8, "width": 8, "channels": 1, "color": "grayscale",
    "layout": "NHWC", "raw_range": [0, 16], "scale": 1 / 16, "offset": 0, "invert": False,
}  # fmt: skip
XSS_MARKER = "<script>window.__cardXss = 1</script>"


def _onnx_model(path: Path, seed: int) -> None:
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.5, (64, 10)).astype(np.float32)
    b = rng.normal(0, 0.1, (10,)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["logits0"]),
            helper.make_node("Add", ["logits0", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
        ],
        "digits_linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 8, 8, 1])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["n", 10])],
        [
            helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.flatten()),
            helper.make_tensor("b", TensorProto.FLOAT, b.shape, b),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _chart_png() -> bytes:
    img = Image.new("RGB", (120, 60), "white")
    for x in range(10, 110):
        img.putpixel((x, 50 - (x - 10) // 3), (37, 99, 235))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_bundle(out: Path, private_key: Path, version: int, name: str = "digits") -> Path:
    """Write a signed ``name`` bundle of ``version`` to ``out`` and return the path."""
    import onnxruntime as ort

    work = out.parent / f".{out.stem}-work"
    work.mkdir(parents=True, exist_ok=True)
    model_path = work / "model.onnx"
    _onnx_model(model_path, seed=version)
    rng = np.random.default_rng(100 + version)
    x = (rng.integers(0, 17, (16, 8, 8, 1)) / 16.0).astype(np.float32)
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    scores = sess.run(None, {"input": x})[0]
    size = model_path.stat().st_size
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
    spec_in = TensorSpec("input", [1, 8, 8, 1], "float32")
    spec_out = TensorSpec("scores", [1, 10], "float32")
    build_bundle(
        out,
        name=name,
        version=version,
        labels=LABELS,
        inputs=[spec_in],
        outputs=[spec_out],
        preprocessing=PREPROCESSING,
        artifacts=[
            ArtifactSource(
                model_path,
                "onnxruntime",
                "fp32",
                metrics={"accuracy": variants[0]["accuracy"], "latency_ms": 0.05, "size": size},
                inputs=[spec_in],
                outputs=[spec_out],
            )
        ],
        private_key=private_key,
        golden=GoldenSet(x, scores, np.argmax(scores, axis=1)),
        files={
            "model_card.md": card.encode(),
            "charts/accuracy.png": _chart_png(),
            "report.json": json.dumps({"variants": variants}).encode(),
        },
        lineage={"metrics": {"test_accuracy": variants[0]["accuracy"], "val_accuracy": 0.9}},
    )
    return out
