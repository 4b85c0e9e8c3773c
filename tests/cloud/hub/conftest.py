"""Fixtures for hub tests: signing keys, small real bundles (a tiny ONNX digits model),
and an app on a fresh SQLite database with one token per role."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.hub.app import create_app
from cloud.hub.config import HubConfig
from cloud.hub.http.auth import create_api_token
from cloud.keys import generate_keypair
from tests.bundles import make_bundle as make_onnx_bundle

LABELS = [str(i) for i in range(10)]


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return generate_keypair(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def make_bundle(
    keys: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Path]:
    out_dir = tmp_path_factory.mktemp("bundles")

    def make(version: int, name: str = "digits", private_key: Path | None = None) -> Path:
        key = private_key or keys[0]
        return make_onnx_bundle(
            out_dir / f"{name}-{version}-{key.parent.name}.ekb",
            key,
            version=version,
            name=name,
            seed=version,
            golden_x=np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 1)).astype(np.float32),
            metrics={"accuracy": 0.9},
            files={"model_card.md": f"# {name} v{version}\n".encode()},
            lineage={"metrics": {"test_accuracy": 0.9}},
        )

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
