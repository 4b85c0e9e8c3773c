"""The one factory of real, signed test bundles without TensorFlow: tiny ONNX graphs built
with onnx.helper, golden outputs computed by ONNX Runtime itself, so agents install them
for real. The edge, hub and browser tests all build their bundles here.

``kind``:
* ``linear``: softmax(flatten(x) @ W + b), a working 8x8 digits-shaped classifier;
* ``nan``: the same, times sum(x)/sum(x): all-zero inputs give NaN scores (a model that
  fails at run time on some inputs, for fallback and probation tests);
* ``slow``: the same plus a large input-dependent matmul chain (for the time limit).
``bad_golden=True`` stores golden outputs that disagree with the model (self-test fails).

:func:`make_tabular_bundle` builds a tabular classifier (named features, standardisation,
a drift reference computed by the trainer's own ``build_reference``) for drift tests.
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
    if kind == "shifted":  # the same model's answers moved one class on: never agrees with it
        w, b = np.roll(w, 1, axis=1), np.roll(b, 1)
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


def perturb_onnx(src: Path, dst: Path, noise: float, seed: int = 7) -> Path:
    """A copy of a :func:`make_onnx` graph whose weights ``W`` carry Gaussian noise of
    std ``noise`` (a corrupted or mis-converted model that still answers plausibly)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    for init in model.graph.initializer:
        if init.name == "W":
            w = numpy_helper.to_array(init)
            w = w + np.random.default_rng(seed).normal(0, noise, w.shape).astype(np.float32)
            init.CopyFrom(numpy_helper.from_array(w.astype(np.float32), "W"))
    onnx.save(model, str(dst))
    return dst


def quantize_onnx(src: Path, dst: Path, calibration_shrink: float = 0.5) -> Path:
    """A real static int8 (QDQ) copy of ``src`` by ONNX Runtime's quantiser, calibrated on
    inputs shrunk by ``calibration_shrink``: activations of real inputs then clip, so the
    variant deviates from the float model like a badly calibrated int8 export does (about
    0.04 mean abs error at 0.5, the size of the issue's openvino-int8 0.086 on iris)."""
    import logging

    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            x = golden_inputs(64, seed=5) * np.float32(calibration_shrink)
            self._it = iter([{"input": x[i : i + 1]} for i in range(len(x))])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its "consider pre-processing" advice, on the root logger
    try:
        quantize_static(
            str(src),
            str(dst),
            Reader(),
            quant_format=QuantFormat.QDQ,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
    finally:
        root.setLevel(level)
    return dst


def make_variant_bundle(
    out: Path,
    key: Path,
    *,
    fp32_noise: float = 0.0,
    per_variant: bool = True,
    version: int = 1,
) -> tuple[Path, dict[str, Any]]:
    """A signed bundle with an fp32 and a real (badly calibrated) int8 onnxruntime variant,
    tolerances measured as the exporter measures them (cloud/export/golden.py) on the
    honest variants. ``fp32_noise`` ships a weight-perturbed fp32 file instead of the
    honest one; ``per_variant=False`` leaves only the shared ``golden.tolerance`` (a bundle
    built before per-variant tolerances). Returns the bundle and the golden report block."""
    import onnxruntime as ort

    from cloud.bundle import ArtifactSource, GoldenSet, build_bundle
    from cloud.export import golden as golden_set
    from edge.contract import TensorSpec

    work = out.parent / f".{out.stem}-work"
    work.mkdir(parents=True, exist_ok=True)
    honest = make_onnx(work / "fp32.onnx")
    int8 = quantize_onnx(honest, work / "int8.onnx")
    x = golden_inputs(32)

    def run(path: Path) -> np.ndarray:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.concatenate([sess.run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])

    y = run(honest)
    measured = {
        "onnxruntime-fp32": golden_set.deviation(y, y),
        "onnxruntime-int8": golden_set.deviation(run(int8), y),
    }
    block = golden_set.summary(measured, golden_set.tolerance(measured, len(x)), len(x))
    fp32 = perturb_onnx(honest, work / "fp32-broken.onnx", fp32_noise) if fp32_noise else honest
    own = block["variant_tolerance"] if per_variant else {}
    build_bundle(
        out,
        name="digits",
        version=version,
        labels=DIGITS_LABELS,
        inputs=[TensorSpec("input", [1, 8, 8, 1], "float32")],
        outputs=[TensorSpec("scores", [1, 10], "float32")],
        preprocessing=DIGITS_PREPROCESSING,
        artifacts=[
            ArtifactSource(fp32, "onnxruntime", "fp32", tolerance=own.get("onnxruntime-fp32")),
            ArtifactSource(int8, "onnxruntime", "int8", tolerance=own.get("onnxruntime-int8")),
        ],
        private_key=key,
        golden=GoldenSet(x, y, tolerance=block["tolerance"]),
    )
    return out, block


class TabularData:
    """The raw-domain distribution of :func:`make_tabular_bundle`'s features: feature ``j``
    is normal with mean ``means[j]`` and std ``stds[j]``; :meth:`stream` draws from it,
    optionally with some features shifted by a number of their stds."""

    def __init__(self, n_features: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.names = [f"sensor_{j:02d}" for j in range(n_features)]
        self.means = rng.uniform(-50, 50, n_features)
        self.stds = rng.uniform(0.5, 20, n_features)

    def stream(self, n: int, seed: int, shift: dict[int, float] | None = None) -> np.ndarray:
        z = np.random.default_rng(seed).normal(size=(n, len(self.names)))
        for j, by in (shift or {}).items():
            z[:, j] += by
        return (self.means + z * self.stds).astype(np.float32)


def make_tabular_bundle(
    out: Path,
    key: Path,
    *,
    version: int = 1,
    name: str = "sensors",
    n_features: int = 30,
    n_train: int = 2000,
    seed: int = 0,
) -> tuple[Path, TabularData]:
    """A signed .ekb holding one onnxruntime-fp32 logistic model on ``n_features`` named,
    standardised features, with reference.json from ``n_train`` samples; returns the path
    and the data distribution (to draw shifted and unshifted streams from)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from cloud.bundle import ArtifactSource, GoldenSet, build_bundle
    from cloud.data.reference import build_reference
    from edge.contract import TensorSpec

    data = TabularData(n_features, seed)
    rng = np.random.default_rng(seed + 1)
    w = rng.normal(0, 1.0, (n_features, 2)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "W"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["scores"], axis=-1)],
        "tabular-logistic",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, n_features])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 2])],
        [numpy_helper.from_array(w, "W")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    work = out.parent / f".{out.stem}-work"
    work.mkdir(parents=True, exist_ok=True)
    model_path = work / "model.onnx"
    onnx.save(model, str(model_path))
    sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])

    def scores(x: np.ndarray) -> np.ndarray:
        return np.concatenate([sess.run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])

    def model_domain(raw: np.ndarray) -> np.ndarray:
        return ((raw - data.means) / data.stds).astype(np.float32)

    x_train = model_domain(data.stream(n_train, seed + 2))
    x_val = model_domain(data.stream(400, seed + 3))
    golden_x = model_domain(data.stream(16, seed + 4))
    labels = ["low", "high"]
    reference = build_reference(x_train, "tabular", data.names, scores(x_val), labels)
    build_bundle(
        out,
        name=name,
        version=version,
        labels=labels,
        inputs=[TensorSpec("input", [1, n_features], "float32")],
        outputs=[TensorSpec("scores", [1, 2], "float32")],
        preprocessing={"kind": "tabular", "features": data.names,
                       "mean": data.means.tolist(), "std": data.stds.tolist()},
        artifacts=[ArtifactSource(model_path, "onnxruntime", "fp32", {})],
        private_key=key,
        golden=GoldenSet(golden_x, scores(golden_x)),
        reference=reference,
    )  # fmt: skip
    return out, data
