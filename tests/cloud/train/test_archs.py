from __future__ import annotations

import pytest

from cloud.train.archs import build_model, resolve_arch
from edge.errors import ConfigError


def test_auto_picks_cnn_for_images_and_mlp_for_tables() -> None:
    assert resolve_arch("auto", "image") == "cnn"
    assert resolve_arch("auto", "tabular") == "mlp"
    assert resolve_arch("mlp", "image") == "mlp"


@pytest.mark.parametrize("arch", ["cnn", "mobilenetv2"])
def test_image_archs_refuse_tabular(arch: str) -> None:
    with pytest.raises(ConfigError, match="needs image data"):
        resolve_arch(arch, "tabular")


def test_unknown_arch() -> None:
    with pytest.raises(ConfigError, match="unknown --arch"):
        resolve_arch("resnet", "image")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("arch", "shape"),
    [("cnn", (8, 8, 1)), ("cnn", (32, 32, 3)), ("mlp", (5,)), ("mlp", (8, 8, 1))],
)
def test_models_take_model_domain_input_and_end_in_softmax(
    arch: str, shape: tuple[int, ...]
) -> None:
    import numpy as np

    model = build_model(arch, shape, 4)
    assert model.input_shape == (None, *shape)
    scores = np.asarray(model(np.zeros((2, *shape), np.float32)))
    assert scores.shape == (2, 4)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)
    assert model.layers[-1].name == "scores"


@pytest.mark.slow
def test_mobilenetv2_is_flat_sized_by_alpha_and_checks_its_input() -> None:
    small = build_model("mobilenetv2", (32, 32, 3), 10, width_multiplier=0.35)
    big = build_model("mobilenetv2", (32, 32, 3), 10, width_multiplier=1.0)
    assert small.count_params() < big.count_params()
    assert not any(hasattr(layer, "layers") for layer in small.layers)  # no nested model
    bns = [layer for layer in small.layers if "BatchNormalization" in type(layer).__name__]
    assert bns and all(layer.momentum == 0.9 for layer in bns)
    with pytest.raises(ConfigError, match="3-channel input of at least 32x32"):
        build_model("mobilenetv2", (8, 8, 1), 10)
