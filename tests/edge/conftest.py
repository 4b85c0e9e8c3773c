"""Fixtures shared by the edge tests."""

from __future__ import annotations

import pytest

from edge.contract import Manifest


@pytest.fixture(scope="module")
def digits_manifest(tmp_path_factory: pytest.TempPathFactory) -> Manifest:
    """The manifest of a small signed ONNX digits bundle (for serving-level tests)."""
    from cloud.keys import generate_keypair
    from edge.bundle import read_manifest
    from tests.bundles import make_bundle

    root = tmp_path_factory.mktemp("serving")
    priv, _pub = generate_keypair(root / "keys")
    return read_manifest(make_bundle(root / "b.ekb", priv, version=1))
