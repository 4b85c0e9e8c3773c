"""The ONNX Runtime and OpenVINO int8 recipes build what their names promise, and what
they build runs on the edge backend close to the float model.

A small real conv classifier (onnx.helper, no TensorFlow) is quantised by every recipe of
``onnxruntime-int8`` and ``openvino-int8`` with a training-like calibration batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.export.convert import to_openvino_fp32
from cloud.export.recipes import INT8_RECIPES, RecipeInputs
from edge.runtime.backends import base
from tests.edge.runtime.test_backend_floor import _conv_graph

ORT_RECIPES = {r.name: r for r in INT8_RECIPES["onnxruntime-int8"]}
OV_RECIPES = {r.name: r for r in INT8_RECIPES["openvino-int8"]}


def _data(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (n, 8, 8, 1)).astype(np.float32)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> RecipeInputs:
    root = tmp_path_factory.mktemp("int8-recipes")
    onnx_path = _conv_graph(root / "fp32.onnx")
    ir: dict[str, Path] = {}

    def ir_fp32() -> Path:  # built once, on first use, as the exporter does
        if "xml" not in ir:
            ir["xml"] = to_openvino_fp32(onnx_path, root / "fp32.xml").path
        return ir["xml"]

    return RecipeInputs(
        model=None,
        calibration=_data(64, 0),
        onnx_fp32=lambda: onnx_path,
        ir_fp32=ir_fp32,
        scratch=root,
    )


def _scores(runtime: str, path: Path, x: np.ndarray) -> np.ndarray:
    backend: Any = base.create(runtime, threads=1)
    backend.load(path, None)
    try:
        return np.asarray(backend.infer(x))
    finally:
        backend.close()


def _ops(path: Path) -> set[str]:
    import onnx

    return {n.op_type for n in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize("name", sorted(ORT_RECIPES))
def test_each_onnxruntime_recipe_builds_its_form(
    inputs: RecipeInputs, tmp_path: Path, name: str
) -> None:
    if not base.available()["onnxruntime"]["available"]:
        pytest.skip("onnxruntime is not installed here")
    converted = ORT_RECIPES[name].build(inputs, tmp_path / "m.onnx")
    details, ops = converted.details, _ops(converted.path)
    assert converted.path == tmp_path / "m.onnx" and converted.size > 0
    if name.startswith("qoperator"):
        assert details["format"] == "QOperator" and "QLinearConv" in ops
        assert "QLinearMatMul" in ops or "MatMulInteger" in ops
    else:
        assert details["format"] == "QDQ" and {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert details["activations"] == ("uint8" if "u8s8" in name else "int8")
    assert details["reduce_range"] is name.endswith("-rr")
    assert details["per_channel"] is (name != "qdq-per-tensor")
    assert [s.dtype for s in converted.inputs] == ["float32"]  # float graph interface
    x = _data(32, 1)
    float_scores = _scores("onnxruntime", inputs.onnx_fp32(), x)
    int8_scores = _scores("onnxruntime", converted.path, x)
    assert np.mean(np.abs(int8_scores - float_scores)) < 0.05
    assert np.mean(int8_scores.argmax(1) == float_scores.argmax(1)) >= 0.8


@pytest.mark.slow  # NNCF takes seconds to import and calibrate
@pytest.mark.parametrize("name", sorted(OV_RECIPES))
def test_each_openvino_recipe_builds_an_int8_ir(
    inputs: RecipeInputs, tmp_path: Path, name: str
) -> None:
    pytest.importorskip("nncf")
    if not base.available()["openvino"]["available"]:
        pytest.skip("openvino is not installed here")
    converted = OV_RECIPES[name].build(inputs, tmp_path / "m.xml")
    details = converted.details
    assert converted.companions == [tmp_path / "m.bin"] and converted.companions[0].exists()
    assert details["fake_quantize_nodes"] > 0
    assert details["preset"] == ("mixed" if name == "nncf-mixed" else "default")
    assert details["target_device"] == ("CPU" if name == "nncf-cpu" else "ANY")
    x = _data(32, 1)
    float_scores = _scores("openvino", inputs.ir_fp32(), x)
    int8_scores = _scores("openvino", converted.path, x)
    assert np.mean(np.abs(int8_scores - float_scores)) < 0.05
    assert np.mean(int8_scores.argmax(1) == float_scores.argmax(1)) >= 0.8


def test_a_quantisation_that_quantises_nothing_is_refused(tmp_path: Path) -> None:
    """A graph with no op ONNX Runtime quantises (Sqrt alone) must not pass as int8."""
    import onnx
    from onnx import TensorProto, helper

    from cloud.export.quantize import onnx_int8

    graph = helper.make_graph(
        [helper.make_node("Sqrt", ["input"], ["scores"])],
        "nothing",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "f.onnx"))
    calibration = np.random.default_rng(0).uniform(size=(8, 3)).astype(np.float32)
    with pytest.raises(RuntimeError, match="quantised no node"):
        onnx_int8(tmp_path / "f.onnx", calibration, tmp_path / "q.onnx", per_channel=False)
