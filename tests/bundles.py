"""The one factory of real, signed test bundles without TensorFlow: tiny ONNX graphs built
with onnx.helper, golden outputs computed by ONNX Runtime itself, so agents install them
for real. The edge, hub and browser tests all build their bundles here.

``kind``:
* ``linear``: softmax(flatten(x) @ W + b), a working 8x8 digits-shaped classifier;
* ``nan``: the same, times sum(x)/sum(x): all-zero inputs give NaN scores (a model that
  fails at run time on some inputs, for fallback and probation tests);
* ``slow``: the same plus a large input-dependent matmul chain (for the time limit).
``bad_golden=True`` stores golden outputs that disagree with the model (self-test fails).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tests.digits import DIGITS_LABELS, DIGITS_PREPROCESSING


def make_onnx(path: Path, kind: str = "linear", seed: int = 0) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1.0, (64, 10)).astype(np.float32)
    b = rng.normal(0, 0.1, (10,)).astype(np.float32)
    inits = [
        numpy_helper.from_array(w, "W"),
        numpy_helper.from_array(b, "B"),
        numpy_helper.from_array(np.array([1, 64], dtype=np.int64), "flat_shape"),
    ]
    nodes = [
        helper.make_node("Reshape", ["input", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "W"], ["mm"]),
        helper.make_node("Add", ["mm", "B"], ["logits"]),
    ]
    last = "logits"
    if kind == "slow":
        inits += [
            numpy_helper.from_array(np.array([1200, 24], dtype=np.int64), "reps"),
            numpy_helper.from_array(np.array([1536, 1200], dtype=np.int64), "w2_shape"),
            numpy_helper.from_array(np.array([1200, 1200], dtype=np.int64), "w3_shape"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ]
        one = helper.make_tensor("v", TensorProto.FLOAT, [1], [0.001])
        nodes += [
            helper.make_node("Tile", ["flat", "reps"], ["tiled"]),
            helper.make_node("ConstantOfShape", ["w2_shape"], ["W2"], value=one),
            helper.make_node("ConstantOfShape", ["w3_shape"], ["W3"], value=one),
            helper.make_node("MatMul", ["tiled", "W2"], ["s0"]),
        ]
        prev = "s0"
        for i in range(1, 3):
            nodes.append(helper.make_node("MatMul", [prev, "W3"], [f"s{i}"]))
            prev = f"s{i}"
        nodes += [
            helper.make_node("ReduceSum", [prev], ["ssum"], keepdims=0),
            helper.make_node("Mul", ["ssum", "zero"], ["szero"]),
            helper.make_node("Add", ["logits", "szero"], ["logits2"]),
        ]
        last = "logits2"
    nodes.append(helper.make_node("Softmax", [last], ["probs"], axis=-1))
    if kind == "nan":
        nodes += [
            helper.make_node("ReduceSum", ["flat"], ["total"], keepdims=0),
            helper.make_node("Div", ["total", "total"], ["ratio"]),
            helper.make_node("Mul", ["probs", "ratio"], ["scores"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["probs"], ["scores"]))
    graph = helper.make_graph(
        nodes,
        f"test-{kind}",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 8, 8, 1])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def golden_inputs(n: int = 16, seed: int = 1) -> np.ndarray:
    """Model-domain golden inputs (never all zero, so the ``nan`` kind passes)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(1, 17, (n, 8, 8, 1)) / 16.0).astype(np.float32)


def raw_digit(seed: int = 0) -> list:
    """One raw-domain 8x8 input (values 0..16) as a nested list, like an MQTT client sends."""
    rng = np.random.default_rng(seed)
    return rng.integers(1, 17, (8, 8)).astype(float).tolist()


def make_bundle(
    out: Path,
    key: Path,
    *,
    version: int,
    name: str = "digits",
    kind: str = "linear",
    bad_golden: bool = False,
    seed: int = 0,
    golden_x: np.ndarray | None = None,
    metrics: dict[str, Any] | None = None,
    files: dict[str, bytes] | None = None,
    lineage: dict[str, Any] | None = None,
    golden_labels: bool = False,
) -> Path:
    """A signed .ekb at ``out`` holding one onnxruntime-fp32 variant of ``kind``.

    ``golden_x``: the golden inputs (default :func:`golden_inputs`); ``metrics``: the
    variant's measured metrics; ``files`` and ``lineage``: extra members and provenance
    (a model card, charts, a report), as an export would add them; ``golden_labels``: store
    the float model's own answers as the golden labels.
    """
    import onnxruntime as ort

    from cloud.bundle import ArtifactSource, GoldenSet, build_bundle
    from edge.contract import TensorSpec

    work = out.parent / f".{out.stem}-work"
    work.mkdir(parents=True, exist_ok=True)
    model = make_onnx(work / "model.onnx", kind, seed)
    x = golden_x if golden_x is not None else golden_inputs(2 if kind == "slow" else 16)
    sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    y = np.concatenate([sess.run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])
    if bad_golden:
        y = np.roll(y, 3, axis=1)
    spec_in = TensorSpec("input", [1, 8, 8, 1], "float32")
    spec_out = TensorSpec("scores", [1, 10], "float32")
    build_bundle(
        out,
        name=name,
        version=version,
        labels=DIGITS_LABELS,
        inputs=[spec_in],
        outputs=[spec_out],
        preprocessing=DIGITS_PREPROCESSING,
        artifacts=[ArtifactSource(model, "onnxruntime", "fp32", metrics or {})],
        private_key=key,
        golden=GoldenSet(x, y, np.argmax(y, axis=1) if golden_labels else None),
        files=files,
        lineage=lineage,
    )
    return out
