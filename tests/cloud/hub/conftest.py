"""Fixtures for hub tests: signing keys, small real bundles (a tiny ONNX digits model),
and an app on a fresh SQLite database with one token per role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.bundle import ArtifactSource, GoldenSet, build_bundle
from cloud.hub.app import create_app
from cloud.hub.config import HubConfig
from cloud.hub.http.auth import create_api_token
from cloud.keys import generate_keypair
from edge.contract import TensorSpec

LABELS = [str(i) for i in range(10)]


def tiny_onnx(path: Path, seed: int) -> np.ndarray:
    """A real linear-softmax classifier on 8x8x1 inputs; returns its weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w = rng.normal(size=(64, 10)).astype(np.float32)
    b = np.zeros(10, np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["input"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["logits0"]),
            helper.make_node("Add", ["logits0", "b"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["scores"], axis=-1),
        ],
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 8, 8, 1])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return w


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def make_bundle(
    keys: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Path]:
    out_dir = tmp_path_factory.mktemp("bundles")

    def make(version: int, name: str = "digits", private_key: Path | None = None) -> Path:
        work = out_dir / f"{name}-{version}-src"
        work.mkdir(exist_ok=True)
        model = work / "model.onnx"
        w = tiny_onnx(model, seed=version)
        x = np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 1)).astype(np.float32)
        spec_in = TensorSpec("input", [1, 8, 8, 1], "float32")
        spec_out = TensorSpec("scores", [1, 10], "float32")
        out = out_dir / f"{name}-{version}-{(private_key or keys[0]).parent.name}.ekb"
        build_bundle(
            out,
            name=name,
            version=version,
            labels=LABELS,
            inputs=[spec_in],
            outputs=[spec_out],
            preprocessing={"kind": "image", "height": 8, "width": 8, "channels": 1,
                           "color": "grayscale", "layout": "NHWC", "raw_range": [0, 16],
                           "scale": 1 / 16, "offset": 0, "invert": False},
            artifacts=[ArtifactSource(model, "onnxruntime", "fp32", {"accuracy": 0.9},
                                      [spec_in], [spec_out])],
            private_key=private_key or keys[0],
            golden=GoldenSet(x, _softmax(x.reshape(16, 64) @ w)),
            files={"model_card.md": f"# {name} v{version}\n".encode()},
            lineage={"metrics": {"test_accuracy": 0.9}},
        )  # fmt: skip
        return out

    return make


@pytest.fixture
def hub_config(tmp_path: Path, keys: tuple[Path, Path]) -> HubConfig:
    return HubConfig(data_dir=tmp_path / "hub", trusted_key=keys[1], background=False, testing=True)


@pytest.fixture
def app(hub_config: HubConfig) -> Iterator[Any]:
    application = create_app(hub_config)
    yield application
    application.extensions["edgekit_hub"].stop()
    application.extensions["edgekit_hub"].db.dispose()


@pytest.fixture
def tokens(app: Any) -> dict[str, dict[str, str]]:
    out = {}
    with app.extensions["edgekit_hub"].db.session() as s:
        for role in ("viewer", "operator", "admin"):
            out[role] = {"Authorization": f"Bearer {create_api_token(s, role, role)}"}
    return out


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()
