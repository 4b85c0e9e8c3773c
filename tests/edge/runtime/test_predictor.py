"""Predictor: variant choice, predictions and the golden self-test check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.bundle import extract_bundle
from edge.contract import Artifact, Manifest, TensorSpec
from edge.errors import BackendError, ConfigError, InputError, RuntimeMissingError, SelfTestError
from edge.runtime.predictor import Predictor, choose_artifact, golden_check, load_golden
from tests.edge import tiny_models
from tests.edge.bundle_helpers import make_keys

ALL = {rt: {"available": True} for rt in ("litert", "onnxruntime", "openvino")}


def _manifest(arts: list[tuple[str, str, Any]]) -> Manifest:
    return Manifest(
        name="m",
        version=1,
        created="2026-01-01T00:00:00Z",
        labels=["a", "b"],
        inputs=[TensorSpec("input", [1, 2], "float32")],
        outputs=[TensorSpec("scores", [1, 2], "float32")],
        preprocessing={},
        artifacts=[
            Artifact(f"models/{rt}-{p}", rt, p, "0" * 64, 1, {"latency_ms": lat})
            for rt, p, lat in arts
        ],
        golden=None,
        reference=None,
        lineage={},
    )


def test_choice_prefers_lowest_latency_then_fp32_then_runtime_order() -> None:
    m = _manifest([("openvino", "fp32", 2.0), ("litert", "int8", 1.0), ("onnxruntime", "fp32", 3)])
    assert choose_artifact(m, available=ALL).target == "litert-int8"
    assert choose_artifact(m, precision="fp32", available=ALL).target == "openvino-fp32"
    tie = _manifest(
        [("onnxruntime", "int8", 1.0), ("openvino", "fp32", 1.0), ("litert", "fp32", 1)]
    )
    assert choose_artifact(tie, available=ALL).target == "litert-fp32"
    unknown = _manifest([("litert", "fp32", None), ("onnxruntime", "int8", 5.0)])
    assert choose_artifact(unknown, available=ALL).target == "onnxruntime-int8"


def test_choice_skips_missing_runtimes_and_explains() -> None:
    m = _manifest([("litert", "int8", 1.0), ("onnxruntime", "fp32", 3.0)])
    only_ort: dict[str, dict[str, Any]] = {
        "litert": {"available": False, "reason": "not installed"},
        "onnxruntime": {"available": True},
    }
    assert choose_artifact(m, available=only_ort).target == "onnxruntime-fp32"
    with pytest.raises(RuntimeMissingError, match="litert: not installed"):
        choose_artifact(m, runtime="litert", available=only_ort)
    with pytest.raises(BackendError, match=r"no openvino-\* variant \(it has: litert-int8"):
        choose_artifact(m, runtime="openvino", available=ALL)
    with pytest.raises(ConfigError, match="unknown runtime"):
        choose_artifact(m, runtime="tensorrt", available=ALL)
    with pytest.raises(ConfigError, match="unknown precision"):
        choose_artifact(m, precision="fp16", available=ALL)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    pytest.importorskip("tensorflow", reason="TensorFlow is needed to build the test models")
    base = tmp_path_factory.getbasetemp()
    tm = tiny_models.get(base / "tiny-models")
    priv, pub = make_keys(base, "predictor-keys")
    path = tiny_models.make_signed_bundle(tm, base / "tiny.ekb", priv)
    dest = base / "tiny-extracted"
    return dest, extract_bundle(path, dest, pub)


@pytest.mark.slow
def test_default_predictor_uses_fastest_and_predicts(tiny_bundle: tuple[Path, Manifest]) -> None:
    bundle_dir, manifest = tiny_bundle
    with Predictor.open(bundle_dir, manifest) as p:
        assert p.artifact.target == "litert-int8"
        top = np.zeros((8, 8))
        top[:4] = 14
        pred = p.predict(top)
        assert pred.label == "zero" and pred.index == 0
        assert len(pred.scores) == 3 and sum(pred.scores) == pytest.approx(1.0, abs=0.02)
        assert pred.latency_ms > 0
        assert p.describe()["precision"] == "int8"
        with pytest.raises(InputError, match="batch of 2"):
            p.predict(np.zeros((2, 8, 8, 1)))
        assert [x.label for x in p.predict_batch(np.stack([top, top.T]))] == ["zero", "two"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "target", ["litert-fp32", "litert-int8", "onnxruntime-fp32", "openvino-fp32"]
)
def test_every_variant_passes_its_golden_check(
    tiny_bundle: tuple[Path, Manifest], target: str
) -> None:
    bundle_dir, manifest = tiny_bundle
    runtime, precision = target.split("-")
    with Predictor.open(bundle_dir, manifest, runtime, precision) as p:
        result = golden_check(p)
        assert result["top1_agreement"] >= 0.9 and result["mean_abs_error"] < 0.03


@pytest.mark.slow
def test_golden_check_refuses_disagreeing_outputs(tiny_bundle: tuple[Path, Manifest]) -> None:
    bundle_dir, manifest = tiny_bundle
    golden = load_golden(bundle_dir, manifest)
    wrong = {**golden, "outputs": golden["outputs"][:, ::-1].copy()}
    with Predictor.open(bundle_dir, manifest, "onnxruntime", "fp32") as p:
        with pytest.raises(SelfTestError, match="onnxruntime-fp32: golden mean abs error"):
            golden_check(p, wrong)
        short = {**golden, "outputs": golden["outputs"][:2]}
        with pytest.raises(SelfTestError, match="output shape"):
            golden_check(p, short)


MODELS = Path(__file__).resolve().parents[3] / "models"


@pytest.fixture(scope="module")
def tabular(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    if not (MODELS / "tabular.ekb").exists():
        pytest.skip("models/tabular.ekb not built")
    dest = tmp_path_factory.mktemp("predict-guard") / "tabular"
    return dest, extract_bundle(MODELS / "tabular.ekb", dest, MODELS / "dev-signing.pub")


def test_absurd_tabular_value_is_no_longer_answered_silently(
    tabular: tuple[Path, Manifest],
) -> None:
    dest, manifest = tabular
    typical = dict(
        zip(manifest.preprocessing["features"], manifest.preprocessing["mean"], strict=True)
    )
    absurd = {**typical, "mean_radius": 1e30}
    with Predictor.open(dest, manifest, "onnxruntime", "fp32") as p:  # warn: the default
        assert p.predict(typical).warnings == ()
        pred = p.predict(absurd)
        assert len(pred.warnings) == 1 and "mean_radius" in pred.warnings[0]
        batch = p.predict_batch([typical, absurd])
        assert batch[0].warnings == () and "mean_radius" in batch[1].warnings[0]
    with Predictor.open(dest, manifest, "onnxruntime", "fp32", input_guard="refuse") as p:
        with pytest.raises(InputError) as info:
            p.predict_batch([typical, absurd])
        assert info.value.code == "range" and "(sample 1)" in str(info.value)
    with Predictor.open(dest, manifest, "onnxruntime", "fp32", input_guard="off") as p:
        assert p.guard is None and p.predict(absurd).warnings == ()
    with pytest.raises(ConfigError, match="input guard"):
        Predictor.open(dest, manifest, "onnxruntime", "fp32", input_guard_margin=-1.0)
