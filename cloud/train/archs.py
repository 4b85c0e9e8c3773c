"""Model architectures. Every model takes model-domain float32 input and ends in softmax.

Only conversion-friendly layers are used (Conv2D, pooling, Dense, ReLU, softmax, and the
stock MobileNetV2 blocks), so LiteRT, ONNX and OpenVINO exports and int8 quantisation work
without custom ops. Resizing and scaling are NOT layers: they happen in the data pipeline.
"""

from __future__ import annotations

from typing import Any

from edge.errors import ConfigError

ARCHS = ("auto", "cnn", "mlp", "mobilenetv2")
MOBILENET_MIN_SIZE = 32
MOBILENET_DEFAULT_SIZE = 96
BN_MOMENTUM = 0.9


def resolve_arch(arch: str, kind: str) -> str:
    """``auto`` -> ``cnn`` for images, ``mlp`` for tabular; refuse impossible pairs."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown --arch {arch!r}; choose one of {', '.join(ARCHS)}")
    if arch == "auto":
        return "cnn" if kind == "image" else "mlp"
    if kind == "tabular" and arch in ("cnn", "mobilenetv2"):
        raise ConfigError(f"--arch {arch} needs image data; this dataset is tabular (use mlp)")
    return arch


def build_model(arch: str, input_shape: tuple[int, ...], n_classes: int, **options: Any) -> Any:
    """A compiled-ready (uncompiled) Keras model named after its architecture."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=input_shape, name="input", dtype="float32")
    if arch == "mlp":
        x = layers.Flatten()(inputs) if len(input_shape) > 1 else inputs
        x = layers.Dense(128, activation="relu")(x)
        x = layers.Dropout(0.2)(x)
        x = layers.Dense(64, activation="relu")(x)
    elif arch == "cnn":
        x = inputs
        filters = 32
        size = min(input_shape[0], input_shape[1])
        x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        while True:  # conv blocks until the feature map is small (8x8 digits: two blocks)
            x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
            if size <= 4:
                break
            x = layers.MaxPooling2D(2)(x)
            size //= 2
            filters = min(filters * 2, 128)
        x = layers.Flatten()(x)
        x = layers.Dropout(0.3)(x)
        x = layers.Dense(64, activation="relu")(x)
    elif arch == "mobilenetv2":
        if input_shape[0] < MOBILENET_MIN_SIZE or input_shape[-1] != 3:
            raise ConfigError(
                f"mobilenetv2 needs 3-channel input of at least {MOBILENET_MIN_SIZE}x"
                f"{MOBILENET_MIN_SIZE}, got {list(input_shape)}"
            )
        base = keras.applications.MobileNetV2(
            input_shape=input_shape,
            input_tensor=inputs,  # flat graph (no nested model): simpler for converters
            alpha=float(options.get("width_multiplier", 1.0)),
            include_top=False,
            weights=None,
            pooling="avg",
        )
        for layer in base.layers:
            # Keras' 0.999 suits ImageNet-length runs; over the few hundred steps of a small
            # dataset the moving statistics would stay near their init and ruin val/test.
            if isinstance(layer, layers.BatchNormalization):
                layer.momentum = BN_MOMENTUM
        x = base.output
        x = layers.Dropout(0.2)(x)
    else:
        raise ConfigError(f"unknown architecture {arch!r}")
    outputs = layers.Dense(n_classes, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name=f"edgekit_{arch}")
