"""Post-training int8 quantisation for LiteRT, ONNX Runtime and OpenVINO.

All three calibrate on the same representative batch drawn from the *training* split
(never validation or test, which judge the result). What "int8" means per runtime:

- LiteRT: full-integer model, int8 weights *and* activations, int8 input and output
  tensors; the file's input/output scale and zero-point go into the manifest so the
  device quantises inputs and dequantises scores itself.
- ONNX Runtime: static quantisation (float graph interface), QDQ or QOperator format,
  per-tensor or per-channel int8 weights, int8 or uint8 activations: ``onnx_int8``
  writes one form; cloud/export/recipes.py lists the forms the exporter tries.
- OpenVINO: NNCF post-training quantisation of the fp32 IR (float interface), with a
  preset / target device / bias correction of the recipe's choosing.
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
    return _litert_int8(model, calibration, out, int8_io=True)


def to_litert_int8_float_io(model: Any, calibration: np.ndarray, out: Path) -> Converted:
    """Keras -> full-integer .tflite whose graph quantises its float32 input itself (a
    QUANTIZE op first, a DEQUANTIZE op last): nothing for the device to convert."""
    return _litert_int8(model, calibration, out, int8_io=False)


def _litert_int8(model: Any, calibration: np.ndarray, out: Path, *, int8_io: bool) -> Converted:
    import tensorflow as tf

    def representative() -> Iterator[list[np.ndarray]]:
        for sample in calibration:
            yield [sample[None, ...].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if int8_io:
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    out.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():  # "statistics for quantized inputs": set by the converter
        warnings.simplefilter("ignore", UserWarning)
        out.write_bytes(converter.convert())
    inputs, outputs = litert_specs(out)
    want = "int8" if int8_io else "float32"
    bad = [t.name for t in (*inputs, *outputs) if t.dtype != want or (int8_io and t.scale is None)]
    if bad:
        raise RuntimeError(f"LiteRT converter left tensor(s) {', '.join(bad)} not {want}")
    details = {"calibration_samples": len(calibration), "io": want}
    return Converted(out, inputs, outputs, details=details)


def onnx_int8(
    fp32_onnx: Path,
    calibration: np.ndarray,
    out: Path,
    per_channel: bool,
    *,
    qoperator: bool = False,
    activations: str = "int8",
    reduce_range: bool = False,
) -> Converted:
    """ONNX fp32 -> static int8 model (int8 weights; int8 or uint8 activations).

    QDQ keeps float ops between QuantizeLinear/DequantizeLinear pairs that ORT fuses into
    integer kernels when it can; QOperator writes the integer ops (QLinearConv, ...)
    itself, so nothing depends on ORT's fusion. ``activations="uint8"`` is the U8S8 form
    MLAS has its fastest x86 kernels for; ``reduce_range`` (7-bit weights) avoids the
    int16 saturation of non-VNNI AVX2 u8s8 kernels, at some accuracy.
    """
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
            quant_format=QuantFormat.QOperator if qoperator else QuantFormat.QDQ,
            per_channel=per_channel,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
    finally:
        prepared.unlink(missing_ok=True)
    inputs, outputs = onnx_specs(out)
    quantized = _count_quantized(out)
    if quantized == 0:
        raise RuntimeError("ONNX Runtime quantised no node: the model would not be int8")
    details = {
        "format": "QOperator" if qoperator else "QDQ",
        "per_channel": per_channel,
        "activations": activations,
        "reduce_range": reduce_range,
        "calibration_samples": len(calibration),
        "quantized_nodes": quantized,
    }
    return Converted(out, inputs, outputs, details=details)


def _count_quantized(path: Path) -> int:
    """QuantizeLinear nodes (QDQ) or integer ops (QOperator, QLinear*/ConvInteger...) of a
    model: zero would mean nothing was quantised."""
    import onnx

    return sum(
        n.op_type == "QuantizeLinear" or n.op_type.startswith("QLinear") or "Integer" in n.op_type
        for n in onnx.load(str(path)).graph.node
    )


def to_openvino_int8(
    fp32_xml: Path,
    calibration: np.ndarray,
    out: Path,
    *,
    preset: str | None = None,
    cpu: bool = False,
    fast_bias_correction: bool = True,
) -> Converted:
    """OpenVINO fp32 IR -> int8 IR with NNCF post-training quantisation.

    ``preset``: NNCF's "performance" (symmetric activations: its default for CNNs) or
    "mixed" (asymmetric activations, for inputs/activations not centred on zero);
    ``cpu``: place quantisers as the CPU plugin executes them (``TargetDevice.CPU``)
    instead of for any device; ``fast_bias_correction=False``: the slower, more exact
    bias correction. Every calibration sample is used (``subset_size``).
    """
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(fp32_xml))
    dataset = nncf.Dataset([sample[None, ...] for sample in calibration])
    options: dict[str, Any] = {"fast_bias_correction": fast_bias_correction}
    if preset is not None:
        options["preset"] = nncf.QuantizationPreset(preset)
    if cpu:
        options["target_device"] = nncf.TargetDevice.CPU
    quantized = nncf.quantize(model, dataset, subset_size=len(calibration), **options)
    out.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(quantized, str(out), compress_to_fp16=False)
    inputs, outputs = openvino_specs(quantized)
    fq = sum(op.get_type_name() == "FakeQuantize" for op in quantized.get_ops())
    if fq == 0:
        raise RuntimeError("NNCF inserted no quantisation nodes: the IR would not be int8")
    details = {
        "calibration_samples": len(calibration),
        "fake_quantize_nodes": fq,
        "preset": preset or "default",
        "target_device": "CPU" if cpu else "ANY",
        "fast_bias_correction": fast_bias_correction,
    }
    return Converted(out, inputs, outputs, companions=[out.with_suffix(".bin")], details=details)
