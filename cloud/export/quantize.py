"""Post-training int8 quantisation for LiteRT, ONNX Runtime and OpenVINO.

All three calibrate on the same representative batch drawn from the *training* split
(never validation or test, which judge the result). What "int8" means per runtime:

- LiteRT: full-integer model, int8 weights *and* activations, int8 input and output
  tensors; the file's input/output scale and zero-point go into the manifest so the
  device quantises inputs and dequantises scores itself.
- ONNX Runtime: static quantisation in QDQ format (int8 weights and activations, float
  graph interface), per-tensor or per-channel weights: ``onnx_int8`` writes one; the
  pipeline builds both and keeps the better (accuracy first, then latency).
- OpenVINO: NNCF post-training quantisation of the fp32 IR (float interface).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cloud.export.convert import Converted, litert_specs, onnx_specs, openvino_specs

DEFAULT_CALIBRATION_SAMPLES = 200


def calibration_set(
    x_train: np.ndarray, n: int = DEFAULT_CALIBRATION_SAMPLES, seed: int = 0
) -> np.ndarray:
    """A seeded random subset of the training split (without replacement)."""
    rng = np.random.default_rng(seed)
    take = min(n, len(x_train))
    return x_train[np.sort(rng.choice(len(x_train), size=take, replace=False))]


def to_litert_int8(model: Any, calibration: np.ndarray, out: Path) -> Converted:
    """Keras -> full-integer .tflite with int8 input and output tensors."""
    import tensorflow as tf

    def representative() -> Iterator[list[np.ndarray]]:
        for sample in calibration:
            yield [sample[None, ...].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # "statistics for quantized inputs": set by the converter
        warnings.simplefilter("ignore", UserWarning)
        out.write_bytes(converter.convert())
    inputs, outputs = litert_specs(out)
    bad = [t.name for t in (*inputs, *outputs) if t.dtype != "int8" or t.scale is None]
    if bad:
        raise RuntimeError(f"LiteRT converter left tensor(s) {', '.join(bad)} not int8")
    return Converted(out, inputs, outputs, details={"calibration_samples": len(calibration)})


def onnx_int8(fp32_onnx: Path, calibration: np.ndarray, out: Path, per_channel: bool) -> Converted:
    """ONNX fp32 -> static int8 QDQ model (symmetric int8 weights, int8 activations)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    input_name = onnx_specs(fp32_onnx)[0][0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            sample = next(self._it, None)
            return None if sample is None else {input_name: sample[None, ...]}

    out.parent.mkdir(parents=True, exist_ok=True)
    prepared = out.with_name(out.stem + ".pre.onnx")
    try:  # shape inference + graph clean-up; optional, quantisation works without it
        quant_pre_process(str(fp32_onnx), str(prepared), skip_symbolic_shape=True)
        source = prepared
    except Exception:
        source = fp32_onnx
    try:
        quantize_static(
            str(source),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=per_channel,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
    finally:
        prepared.unlink(missing_ok=True)
    inputs, outputs = onnx_specs(out)
    details = {
        "format": "QDQ",
        "per_channel": per_channel,
        "calibration_samples": len(calibration),
        "quantized_nodes": _count_qdq(out),
    }
    return Converted(out, inputs, outputs, details=details)


def _count_qdq(path: Path) -> int:
    """How many QuantizeLinear nodes a model has: zero would mean nothing was quantised."""
    import onnx

    return sum(n.op_type == "QuantizeLinear" for n in onnx.load(str(path)).graph.node)


def to_openvino_int8(fp32_xml: Path, calibration: np.ndarray, out: Path) -> Converted:
    """OpenVINO fp32 IR -> int8 IR with NNCF post-training quantisation."""
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(fp32_xml))
    dataset = nncf.Dataset([sample[None, ...] for sample in calibration])
    quantized = nncf.quantize(model, dataset, subset_size=len(calibration))
    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    inputs, outputs = openvino_specs(quantized)
    fq = sum(op.get_type_name() == "FakeQuantize" for op in quantized.get_ops())
    if fq == 0:
        raise RuntimeError("NNCF inserted no quantisation nodes: the IR would not be int8")
    details = {"calibration_samples": len(calibration), "fake_quantize_nodes": fq}
    return Converted(out, inputs, outputs, companions=[out.with_suffix(".bin")], details=details)
