"""Tiny real models for backend and predictor tests, built with TensorFlow when present.

One Keras CNN on 8x8x1 inputs (digits-like, 3 classes) is exported to every variant:
LiteRT fp32 and full-int8, ONNX fp32, OpenVINO fp32 (converted from the ONNX file).
The result is a dict of paths plus the float model's reference outputs, and a signed
bundle holding all variants. Tests that use it are marked slow and skip if TF is missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import TensorSpec
from tests.digits import DIGITS_PREPROCESSING

H, W, C, N_CLASSES = 8, 8, 1, 3
LABELS = ["zero", "one", "two"]
PREPROCESSING = DIGITS_PREPROCESSING  # H, W, C are the digits' 8, 8, 1


@dataclass
class TinyModels:
    root: Path
    files: dict[str, Path]  # target -> model file
    companions: dict[str, list[Path]]
    specs: dict[str, tuple[list[TensorSpec], list[TensorSpec]]]
    x: np.ndarray  # model-domain sample batch
    reference: np.ndarray  # float Keras outputs for x
    extra: dict[str, Any] = field(default_factory=dict)


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three separable classes: bright top, bright bottom, bright left half."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, N_CLASSES, n)
    x = rng.uniform(0, 0.3, (n, H, W, C)).astype(np.float32)
    for i, cls in enumerate(y):
        if cls == 0:
            x[i, : H // 2] += 0.7
        elif cls == 1:
            x[i, H // 2 :] += 0.7
        else:
            x[i, :, : W // 2] += 0.7
    return np.clip(x, 0, 1), y.astype(np.int64)


def build(root: Path) -> TinyModels:
    """Train for a moment and export every variant into ``root``."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    x, y = _data(300)
    model = keras.Sequential(
        [
            keras.Input((H, W, C), name="input"),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(N_CLASSES, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=8, batch_size=32, verbose=0)
    reference = model.predict(x[:16], verbose=0).astype(np.float32)

    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    files["litert-fp32"] = root / "litert-fp32.tflite"
    files["litert-fp32"].write_bytes(conv.convert())

    def rep() -> Any:
        for i in range(100):
            yield [x[i : i + 1]]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    files["litert-int8"] = root / "litert-int8.tflite"
    files["litert-int8"].write_bytes(conv.convert())

    files["onnxruntime-fp32"] = root / "onnxruntime-fp32.onnx"
    model.export(str(files["onnxruntime-fp32"]), format="onnx", verbose=False)

    companions: dict[str, list[Path]] = {}
    try:
        import openvino as ov

        ov_model = ov.convert_model(str(files["onnxruntime-fp32"]))
        files["openvino-fp32"] = root / "openvino-fp32.xml"
        ov.save_model(ov_model, str(files["openvino-fp32"]), compress_to_fp16=False)
        companions["openvino-fp32"] = [root / "openvino-fp32.bin"]
    except ImportError:
        pass

    specs: dict[str, tuple[list[TensorSpec], list[TensorSpec]]] = {}
    from cloud.byom import read_specs

    for target, path in files.items():
        specs[target] = read_specs(path)
    return TinyModels(root, files, companions, specs, x[:16].copy(), reference)


_CACHE: dict[Path, TinyModels] = {}


def get(root: Path) -> TinyModels:
    """Build once per test session (the fixture passes a session temp dir)."""
    if root not in _CACHE:
        _CACHE[root] = build(root)
    return _CACHE[root]


def make_signed_bundle(tm: TinyModels, out: Path, priv: Path, *, version: int = 1) -> Path:
    """A signed bundle holding every variant, with latencies that make litert-int8 fastest."""
    from cloud.bundle import ArtifactSource, GoldenSet, build_bundle

    latency = {
        "litert-int8": 0.1,
        "litert-fp32": 0.2,
        "onnxruntime-fp32": 0.3,
        "openvino-fp32": 0.4,
    }
    artifacts = [
        ArtifactSource(
            path,
            target.split("-")[0],
            target.split("-")[1],
            {"accuracy": None, "latency_ms": latency[target]},
            *tm.specs[target],
            companions=tm.companions.get(target, []),
        )
        for target, path in tm.files.items()
    ]
    build_bundle(
        out,
        name="tiny",
        version=version,
        labels=LABELS,
        inputs=[TensorSpec("input", [1, H, W, C], "float32")],
        outputs=[TensorSpec("scores", [1, N_CLASSES], "float32")],
        preprocessing=PREPROCESSING,
        artifacts=artifacts,
        private_key=priv,
        golden=GoldenSet(
            tm.x, tm.reference, None, {"max_mean_abs_error": 0.03, "min_top1_agreement": 0.9}
        ),
    )
    return out
