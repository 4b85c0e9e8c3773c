"""fp32 conversion of a Keras model to LiteRT (.tflite), ONNX and OpenVINO IR.

Each converter writes one model file (plus companions such as OpenVINO's ``.bin``) and
returns the tensors the *file* really has, read back from the file itself, so the manifest
describes what the runtime will see rather than what we hoped to write.
OpenVINO IR is converted from the ONNX file: one graph export path for two runtimes, and it
needs no TensorFlow frontend. IR weights stay fp32 (``compress_to_fp16=False``): a variant
called fp32 must be fp32.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import TensorSpec

ONNX_DTYPES = {1: "float32", 3: "int8", 2: "uint8", 6: "int32", 7: "int64", 10: "float16"}


@dataclass
class Converted:
    """A written model: its file, companion files and the tensors read back from it."""

    path: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    companions: list[Path] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return self.path.stat().st_size + sum(p.stat().st_size for p in self.companions)


def litert_interpreter(path: Path) -> Any:
    """A LiteRT interpreter: ai-edge-litert first, then tflite-runtime, then tf.lite."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf

            Interpreter = tf.lite.Interpreter
    return Interpreter(model_path=str(path))


def _litert_spec(detail: dict[str, Any]) -> TensorSpec:
    signature = detail.get("shape_signature")
    shape = signature if signature is not None and len(signature) else detail["shape"]
    dtype = np.dtype(detail["dtype"]).name
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if dtype in ("int8", "uint8") and scale:
        return TensorSpec("input", [int(d) for d in shape], dtype, float(scale), int(zero_point))
    return TensorSpec("input", [int(d) for d in shape], dtype)


def litert_specs(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of a .tflite file, with scale/zero-point for int8 tensors."""
    interp = litert_interpreter(path)
    inputs = [_named(_litert_spec(d), d["name"]) for d in interp.get_input_details()]
    outputs = [_named(_litert_spec(d), d["name"]) for d in interp.get_output_details()]
    return inputs, outputs


def _named(spec: TensorSpec, name: str) -> TensorSpec:
    return TensorSpec(name, spec.shape, spec.dtype, spec.scale, spec.zero_point)


def onnx_specs(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Graph inputs and outputs of an .onnx file (dynamic dimensions become -1)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}

    def spec(value: Any) -> TensorSpec:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        return TensorSpec(value.name, dims, ONNX_DTYPES.get(tensor.elem_type, "unknown"))

    inputs = [spec(v) for v in graph.input if v.name not in initializers]
    return inputs, [spec(v) for v in graph.output]


def openvino_specs(model: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of an ``openvino.Model`` (dynamic dimensions become -1)."""

    def spec(port: Any) -> TensorSpec:
        dims = [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
        name = port.get_any_name() if port.get_names() else f"port{port.get_index()}"
        return TensorSpec(name, dims, port.get_element_type().to_dtype().name)

    return [spec(p) for p in model.inputs], [spec(p) for p in model.outputs]


def to_litert_fp32(model: Any, out: Path) -> Converted:
    """Keras -> float32 .tflite with the builtin op set (runs on every LiteRT build)."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(converter.convert())
    inputs, outputs = litert_specs(out)
    return Converted(out, inputs, outputs)


def to_onnx_fp32(model: Any, out: Path) -> Converted:
    """Keras -> ONNX through Keras' own exporter (tf2onnx underneath), dynamic batch."""
    out.parent.mkdir(parents=True, exist_ok=True)
    model.export(str(out), format="onnx", verbose=False)
    inputs, outputs = onnx_specs(out)
    return Converted(out, inputs, outputs)


def to_openvino_fp32(onnx_path: Path, out: Path) -> Converted:
    """ONNX -> OpenVINO IR (.xml + .bin), weights kept in fp32."""
    import openvino as ov

    model = ov.convert_model(str(onnx_path))
    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(out), compress_to_fp16=False)
    inputs, outputs = openvino_specs(model)
    return Converted(out, inputs, outputs, companions=[out.with_suffix(".bin")])
