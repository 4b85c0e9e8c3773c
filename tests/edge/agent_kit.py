"""Shared fixtures for agent tests: keys and a set of signed bundles (built once)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bundles import make_bundle


@pytest.fixture(scope="session", name="kit")
def kit_fixture(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from cloud.keys import generate_keypair

    root = tmp_path_factory.mktemp("agent-kit")
    priv, pub = generate_keypair(root / "keys")
    other_priv, _ = generate_keypair(root / "other")
    return {
        "priv": priv,
        "pub": pub,
        "v1": make_bundle(root / "d1.ekb", priv, version=1),
        "v2": make_bundle(root / "d2.ekb", priv, version=2, seed=2),
        "v3": make_bundle(root / "d3.ekb", priv, version=3, seed=3),
        "nan2": make_bundle(root / "n2.ekb", priv, version=2, kind="nan", seed=2),
        "bad_golden2": make_bundle(root / "bg2.ekb", priv, version=2, bad_golden=True),
        "foreign2": make_bundle(root / "f2.ekb", other_priv, version=2),
        "slow1": make_bundle(root / "s1.ekb", priv, version=1, kind="slow"),
    }
