"""Memory measured at export: a fresh process per variant, written as requires.memory_mb."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from cloud.export.memory import measure_variant_memory, required_mb, with_memory
from cloud.export.pipeline import ExportResult
from edge.bundle import extract_bundle
from edge.contract import Artifact, Manifest

REPO = Path(__file__).resolve().parents[3]
BUNDLE, PUB = REPO / "models" / "digits.ekb", REPO / "models" / "dev-signing.pub"


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest, np.ndarray]:
    if not BUNDLE.exists():
        pytest.skip("models/digits.ekb not built")
    dest = tmp_path_factory.mktemp("mem") / "bundle"
    manifest = extract_bundle(BUNDLE, dest, PUB)
    return dest, manifest, np.load(dest / "golden.npz")["inputs"]


def _artifact(manifest: Manifest, target: str) -> Artifact:
    return next(a for a in manifest.artifacts if a.target == target)


@pytest.mark.parametrize("target", ["litert-fp32", "onnxruntime-int8"])
def test_a_variant_is_measured_in_a_fresh_process(
    digits: tuple[Path, Manifest, np.ndarray], target: str
) -> None:
    root, manifest, x = digits
    a = _artifact(manifest, target)
    m = measure_variant_memory(root / a.file, a, x, runs=3)
    assert "error" not in m, m
    assert m["target"] == target and m["runs"] == 3
    # the runtime's import and the model cost something, and far less than a TensorFlow
    # process would (the child never imports it)
    assert 1.0 < m["memory_mb"] < 300.0
    assert m["peak_rss_mb"] >= m["rss_after_mb"] >= m["rss_before_mb"] > 10
    assert m["rss_before_mb"] < 200 and m["seconds"] > 0
    assert required_mb(m) == round(m["memory_mb"], 1)


def test_a_broken_model_is_reported_not_raised(
    digits: tuple[Path, Manifest, np.ndarray], tmp_path: Path
) -> None:
    _root, manifest, x = digits
    bad = tmp_path / "broken.tflite"
    bad.write_bytes(b"not a model")
    m = measure_variant_memory(bad, _artifact(manifest, "litert-fp32"), x)
    assert "LiteRT cannot load broken.tflite" in m["error"]
    assert required_mb(m) is None
    m = measure_variant_memory(bad, _artifact(manifest, "litert-fp32"), x, python="/nonexistent")
    assert "cannot start" in m["error"]
    m = measure_variant_memory(
        bad, _artifact(manifest, "litert-fp32"), x[:0], python=sys.executable
    )
    assert "no inputs" in m["error"]


def test_memory_joins_the_other_requirements() -> None:
    metrics = {"accuracy": 0.9, "requires": {"runtime_version": "2.3.0", "arch": None}}
    out = with_memory(metrics, {"memory_mb": 41.46})
    assert out["requires"] == {"runtime_version": "2.3.0", "arch": None, "memory_mb": 41.5}
    assert metrics["requires"] == {"runtime_version": "2.3.0", "arch": None}  # not mutated
    assert with_memory({"accuracy": 1}, {"memory_mb": 3})["requires"]["memory_mb"] == 3.0
    for failed in ({"error": "boom"}, {}, {"memory_mb": -1}, {"memory_mb": "12"}):
        assert with_memory(metrics, failed) is metrics


@pytest.mark.slow
def test_every_shipped_variant_states_its_memory(exported: ExportResult, tmp_path: Path) -> None:
    for a in exported.manifest.artifacts:
        assert a.requires is not None and a.requires.memory_mb is not None, a.target
        assert 0 < a.requires.memory_mb < 500
    rows = {r["target"]: r for r in exported.report["variants"] if r["included"]}
    for target, row in rows.items():
        assert row["memory"]["memory_mb"] == pytest.approx(
            next(a for a in exported.manifest.artifacts if a.target == target).requires.memory_mb,  # type: ignore[union-attr]
            abs=0.06,
        )
        assert row["seconds"]["memory"] < 60
    assert exported.report["seconds"]["memory"] > 0
    json.dumps(exported.report)  # still JSON
