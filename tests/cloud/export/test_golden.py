"""Golden-set tolerances: one per variant from its own deviation, the shared one for old
agents, and (slow) a real export whose re-packed, weight-perturbed fp32 variant fails the
device self-test while every honest variant passes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloud.export.golden import (
    MAE_FLOOR,
    deviation,
    summary,
    tolerance,
    variant_tolerances,
)
from cloud.export.pipeline import ExportResult
from edge.bundle import extract_bundle
from edge.contract import Manifest


def test_each_variant_gets_margin_over_its_own_deviation() -> None:
    ref = np.eye(4, dtype=np.float32)[[0, 1, 2, 3] * 8]
    measured = {
        "litert-fp32": deviation(ref, ref),
        "openvino-int8": deviation(ref + 0.086, ref),
    }
    own = variant_tolerances(measured, n=32)
    assert own["litert-fp32"] == {"max_mean_abs_error": MAE_FLOOR, "min_top1_agreement": 0.9375}
    assert own["openvino-int8"]["max_mean_abs_error"] == 0.18  # 2 x 0.086, rounded up
    shared = tolerance(measured, n=32)
    assert shared == own["openvino-int8"]  # the worst variant's, as before
    block = summary(measured, shared, 32)
    assert block["variant_tolerance"] == own and block["tolerance"] == shared


def test_floor_and_agreement_slack_apply_per_variant() -> None:
    ref = np.eye(2, dtype=np.float32)[[0, 1] * 8]
    flipped = ref.copy()
    flipped[:2] = flipped[:2, ::-1]  # two of 16 answers change
    own = variant_tolerances({"a": deviation(ref + 1e-7, ref), "b": deviation(flipped, ref)}, 16)
    assert own["a"]["max_mean_abs_error"] == MAE_FLOOR  # other CPUs round differently
    assert own["b"]["min_top1_agreement"] == pytest.approx(14 / 16 - 2 / 16)
    assert variant_tolerances({}, 16) == {}


# ------------------------------------------------------------------ a real export (slow)


def _repack_with_perturbed_onnx_fp32(
    root: Path, manifest: Manifest, key: Path, out: Path, noise: float
) -> Path:
    """The exported bundle again, signed, with the onnxruntime-fp32 file's float weights
    perturbed (each tensor by ``noise`` times its own std): a corrupted fp32 conversion."""
    import onnx
    from onnx import numpy_helper

    from cloud.bundle import ArtifactSource, GoldenSet, build_bundle

    rng = np.random.default_rng(3)
    sources = []
    for a in manifest.artifacts:
        path = root / a.file
        if a.target == "onnxruntime-fp32":
            model = onnx.load(str(path))
            for init in model.graph.initializer:
                w = numpy_helper.to_array(init)
                if w.dtype == np.float32 and w.size > 1:
                    w = w + rng.normal(0, noise * float(w.std()), w.shape).astype(np.float32)
                    init.CopyFrom(numpy_helper.from_array(w, init.name))
            path = out.parent / "perturbed.onnx"
            onnx.save(model, str(path))
        sources.append(
            ArtifactSource(
                path,
                a.runtime,
                a.precision,
                dict(a.metrics),  # carries the variant's golden_tolerance unchanged
                a.inputs,
                a.outputs,
                [root / c.file for c in a.companions],
            )
        )
    assert manifest.golden is not None
    with np.load(root / manifest.golden.entry.file) as npz:
        golden = GoldenSet(npz["inputs"], npz["outputs"], npz["labels"], manifest.golden.tolerance)
    build_bundle(
        out,
        name=manifest.name,
        version=manifest.version + 1,
        labels=manifest.labels,
        inputs=manifest.inputs,
        outputs=manifest.outputs,
        preprocessing=manifest.preprocessing,
        artifacts=sources,
        private_key=key,
        golden=golden,
    )
    return out


@pytest.mark.slow
def test_exported_variants_carry_own_tolerance_and_a_broken_fp32_fails(
    exported: ExportResult, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    from edge.runtime import self_test

    root = tmp_path / "installed"
    manifest = extract_bundle(exported.bundle, root, keypair[1])
    own = exported.report["golden"]["variant_tolerance"]
    for a in manifest.artifacts:
        assert a.tolerance is not None and a.tolerance == own[a.target]
        measured = exported.report["golden"]["measured"][a.target]["mean_abs_error"]
        assert a.tolerance["max_mean_abs_error"] >= max(2 * measured, MAE_FLOOR)
    fp32 = manifest.artifact("onnxruntime", "fp32")
    assert fp32 is not None and fp32.tolerance is not None
    assert self_test(root, manifest, pin_runtime="onnxruntime", time_budget=0.1).chosen

    bad = _repack_with_perturbed_onnx_fp32(
        root, manifest, keypair[0], tmp_path / "broken.ekb", noise=0.5
    )
    bad_root = tmp_path / "broken"
    bad_manifest = extract_bundle(bad, bad_root, keypair[1])
    report = self_test(bad_root, bad_manifest, pin_runtime="onnxruntime", time_budget=0.1)
    result = {v.target: v for v in report.variants}
    broken = result["onnxruntime-fp32"]
    assert broken.status == "dropped", broken.to_dict()
    assert broken.mean_abs_error is not None
    assert broken.mean_abs_error > fp32.tolerance["max_mean_abs_error"]
    # measured: MAE 0.012 with top-1 agreement 0.97, a model that still "looks right"
    assert result["onnxruntime-int8"].status == "ok"
