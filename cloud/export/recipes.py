"""The int8 recipes of each int8 target: the ways of quantising one float model.

"int8" is not one thing per runtime: LiteRT can take int8 or float I/O, ONNX Runtime QDQ
or QOperator graphs with per-tensor or per-channel weights, NNCF has presets. Which one is
fastest depends on the runtime's kernels (XNNPACK, MLAS, oneDNN) and the model, so the
exporter builds every recipe of a target and keeps the fastest one within the accuracy
gate (cloud/export/build.py). A recipe's ``name`` is short and stable: it is written to the
artifact's ``metrics.recipe`` (manifest, model card, report.json).

To add a recipe, append a ``Recipe`` to its target's tuple in ``INT8_RECIPES``; its builder
writes the model file at the path it is given and returns what it wrote (``Converted``).
Builders live in cloud/export/quantize.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cloud.export.convert import Converted
from cloud.export.quantize import (
    onnx_int8,
    to_litert_int8,
    to_litert_int8_float_io,
    to_openvino_int8,
)


@dataclass(frozen=True)
class RecipeInputs:
    """What a recipe builds from; the fp32 intermediates are built once, on first call."""

    model: Any  # the float Keras model
    calibration: np.ndarray  # training-split calibration batch
    onnx_fp32: Callable[[], Path]  # fp32 ONNX (built once, lazily)
    ir_fp32: Callable[[], Path]  # fp32 OpenVINO IR .xml (built once, lazily)
    scratch: Path


@dataclass(frozen=True)
class Recipe:
    """One way to make an int8 model file; ``build(inputs, out)`` writes it at ``out``."""

    name: str
    description: str
    build: Callable[[RecipeInputs, Path], Converted]


INT8_RECIPES: dict[str, tuple[Recipe, ...]] = {
    "litert-int8": (
        Recipe(
            "int8-io",
            "full-integer model, int8 input and output tensors; the backend quantises the "
            "input straight into the input tensor",
            lambda i, out: to_litert_int8(i.model, i.calibration, out),
        ),
        Recipe(
            "float-io",
            "full-integer model with float32 input and output: QUANTIZE/DEQUANTIZE ops "
            "inside the graph convert at its edges",
            lambda i, out: to_litert_int8_float_io(i.model, i.calibration, out),
        ),
    ),
    "onnxruntime-int8": (
        Recipe(
            "qdq-per-tensor",
            "static QDQ, int8 activations and weights, one scale per weight tensor",
            lambda i, out: onnx_int8(i.onnx_fp32(), i.calibration, out, per_channel=False),
        ),
        Recipe(
            "qdq-per-channel",
            "static QDQ, int8 activations and weights, one scale per output channel",
            lambda i, out: onnx_int8(i.onnx_fp32(), i.calibration, out, per_channel=True),
        ),
        Recipe(
            "qdq-u8s8",
            "static QDQ, uint8 activations and per-channel int8 weights: the U8S8 form of "
            "MLAS's fastest x86 integer kernels",
            lambda i, out: onnx_int8(
                i.onnx_fp32(), i.calibration, out, per_channel=True, activations="uint8"
            ),
        ),
        Recipe(
            "qoperator-u8s8",
            "QOperator graph (QLinearConv, QLinearMatMul, ...), uint8 activations, "
            "per-channel int8 weights: no dependence on ORT fusing QDQ pairs",
            lambda i, out: onnx_int8(
                i.onnx_fp32(), i.calibration, out, True, qoperator=True, activations="uint8"
            ),
        ),
        Recipe(
            "qoperator-u8s8-rr",
            "as qoperator-u8s8 with reduce_range (7-bit weights): no int16 saturation in "
            "the u8s8 kernels of x86 CPUs without VNNI",
            lambda i, out: onnx_int8(
                i.onnx_fp32(),
                i.calibration,
                out,
                True,
                qoperator=True,
                activations="uint8",
                reduce_range=True,
            ),
        ),
    ),
    "openvino-int8": (
        Recipe(
            "nncf-performance",
            "NNCF post-training quantisation, PERFORMANCE preset (symmetric activations; "
            "NNCF's default for CNNs), quantisers placed for any device",
            lambda i, out: to_openvino_int8(i.ir_fp32(), i.calibration, out),
        ),
        Recipe(
            "nncf-mixed",
            "NNCF MIXED preset: asymmetric activations (for activations not centred on 0)",
            lambda i, out: to_openvino_int8(i.ir_fp32(), i.calibration, out, preset="mixed"),
        ),
        Recipe(
            "nncf-cpu",
            "NNCF PERFORMANCE preset with quantisers placed as the CPU plugin runs them "
            "(TargetDevice.CPU)",
            lambda i, out: to_openvino_int8(i.ir_fp32(), i.calibration, out, cpu=True),
        ),
    ),
}


def recipes_for(target: str) -> tuple[Recipe, ...]:
    """The recipes of an int8 target; ValueError for a target that has none."""
    try:
        return INT8_RECIPES[target]
    except KeyError:
        raise ValueError(
            f"no int8 recipes for target {target!r} (known: {', '.join(INT8_RECIPES)})"
        ) from None
