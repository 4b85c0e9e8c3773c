"""A real digits run through the whole exporter: six targets, gate, golden set, signed bundle."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.export import TARGETS
from cloud.export.build import CANDIDATE_CALLS
from cloud.export.pipeline import ExportResult
from edge.bundle import extract_bundle, verify_bundle
from edge.cli import main

pytestmark = pytest.mark.slow


def _member(bundle: Path, name: str) -> bytes:
    with tarfile.open(bundle, "r:gz") as tar:
        fh = tar.extractfile(name)
        assert fh is not None
        return fh.read()


def test_bundle_verifies_with_the_public_key(
    exported: ExportResult, keypair: tuple[Path, Path]
) -> None:
    manifest = verify_bundle(exported.bundle, keypair[1])
    assert manifest.signature is not None
    assert manifest.name == "digits" and manifest.version == 1
    assert sorted(a.target for a in manifest.artifacts) == sorted(TARGETS)
    assert manifest.golden is not None and manifest.reference is not None
    names = {f.file for f in manifest.files}
    assert {"model_card.md", "report.json", "charts/confusion_matrix.png"} <= names
    assert manifest.lineage["dataset"]["fingerprint"].startswith("sha256:")


def test_every_artifact_carries_the_metrics(exported: ExportResult) -> None:
    keys = {"accuracy", "agreement", "latency_ms", "latency_p95_ms", "size"}
    keys |= {"speedup_vs_fp32", "accuracy_drop_points"}
    for a in exported.manifest.artifacts:
        assert keys <= set(a.metrics), a.target
        assert 0.9 <= a.metrics["accuracy"] <= 1.0
        assert 0 < a.metrics["latency_ms"] <= a.metrics["latency_p95_ms"]
        assert a.metrics["size"] >= a.size > 0
        if a.precision == "fp32":
            assert a.metrics["speedup_vs_fp32"] == 1.0


def test_int8_variants_stay_within_one_point_of_float(exported: ExportResult) -> None:
    float_acc = exported.report["float_model"]["test_accuracy"]
    assert float_acc >= 0.95
    for row in exported.report["variants"]:
        assert row["included"], row
        if row["precision"] == "int8":
            assert row["accuracy_drop_points"] <= 1.0, row
            assert abs(row["accuracy"] - float_acc) * 100 <= 1.0, row


def test_int8_files_really_are_int8(exported: ExportResult, tmp_path: Path) -> None:
    import onnx
    import openvino as ov

    from cloud.export.convert import litert_interpreter

    root = tmp_path / "b"
    manifest = extract_bundle(exported.bundle, root, None)
    lite = manifest.artifact("litert", "int8")
    assert lite is not None
    interp = litert_interpreter(root / lite.file)
    io = np.int8 if lite.metrics["recipe"] == "int8-io" else np.float32
    for detail, spec in (
        (interp.get_input_details()[0], lite.inputs[0]),
        (interp.get_output_details()[0], lite.outputs[0]),
    ):
        assert np.dtype(detail["dtype"]) == io
        assert spec.dtype == np.dtype(io).name
        if io == np.int8:
            assert spec.scale == pytest.approx(detail["quantization"][0])
            assert spec.zero_point == detail["quantization"][1]
    kinds = {np.dtype(d["dtype"]) for d in interp.get_tensor_details()}
    assert np.dtype(np.int8) in kinds  # the graph itself is quantised
    ort = manifest.artifact("onnxruntime", "int8")
    assert ort is not None
    ops = {n.op_type for n in onnx.load(str(root / ort.file)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    ovi = manifest.artifact("openvino", "int8")
    assert ovi is not None
    model = ov.Core().read_model(str(root / ovi.file))
    assert any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
    fp32 = manifest.artifact("openvino", "fp32")
    assert fp32 is not None
    consts = [
        op
        for op in ov.Core().read_model(str(root / fp32.file)).get_ops()
        if op.get_type_name() == "Constant"
    ]
    assert all(c.get_element_type().to_dtype() != np.float16 for c in consts)


def test_report_lists_every_variant_and_the_ort_choice(exported: ExportResult) -> None:
    report: dict[str, Any] = json.loads(_member(exported.bundle, "report.json"))
    assert [r["target"] for r in report["variants"]] == list(TARGETS)
    from cloud.export.recipes import INT8_RECIPES

    for row in report["variants"]:
        if row["precision"] != "int8":
            assert row["recipe"] is None and row["candidates"] == []
            continue
        names = [r.name for r in INT8_RECIPES[row["target"]]]
        assert [c["name"] for c in row["candidates"]] == names
        chosen = [c["name"] for c in row["candidates"] if c["chosen"]]
        assert chosen == [row["recipe"]]
    ort = next(r for r in report["variants"] if r["target"] == "onnxruntime-int8")
    assert {c["name"] for c in ort["candidates"]} >= {"qdq-per-tensor", "qdq-per-channel"}
    assert ort["recipe"] in {c["name"] for c in ort["candidates"]}
    assert report["golden"]["size"] == 32
    assert set(report["golden"]["measured"]) == set(TARGETS)


def test_every_shipped_variant_passes_the_device_self_test(
    exported: ExportResult, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    from edge.runtime import self_test

    root = tmp_path / "installed"
    manifest = extract_bundle(exported.bundle, root, keypair[1])
    assert manifest.golden is not None
    tol = manifest.golden.tolerance
    worst = max(m["mean_abs_error"] for m in exported.report["golden"]["measured"].values())
    assert tol["max_mean_abs_error"] >= 2 * worst  # recorded with margin
    with np.load(root / manifest.golden.entry.file) as npz:
        assert npz["inputs"].shape == (32, 8, 8, 1) and npz["inputs"].dtype == np.float32
        assert npz["outputs"].shape == (32, 10) and npz["labels"].shape == (32,)
    report = self_test(root, manifest, time_budget=0.3)
    statuses = {v.target: v.status for v in report.variants}
    assert statuses == dict.fromkeys(TARGETS, "ok")


def test_absurd_gate_leaves_everything_out(
    digits_run: Path,
    keypair: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "never.ekb"
    rc = main(
        [
            "export", str(digits_run), "--out", str(out), "--name", "digits", "--version", "2",
            "--key", str(keypair[0]), "--targets", "litert-fp32,onnxruntime-fp32,litert-int8",
            "--max-accuracy-drop", "-1",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1
    assert not out.exists()
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: no variant passed the gate")
    for target in ("litert-fp32", "onnxruntime-fp32", "litert-int8"):
        assert f"{target}: accuracy" in last
    saved = json.loads((tmp_path / "never.ekb.report.json").read_text())
    assert saved["included"] == [] and len(saved["left_out"]) == 3


def test_one_failing_target_does_not_stop_the_others(digits_run: Path, tmp_path: Path) -> None:
    """Calibration data of the wrong shape makes every real quantiser crash; fp32 survives."""
    from cloud.export.build import BuildContext, build_variants
    from cloud.export.gate import FloatAnswers, GateRules, apply_gate
    from cloud.export.run import load_run

    run = load_run(digits_run)
    root, scratch = tmp_path / "bundle", tmp_path / "scratch"
    root.mkdir()
    scratch.mkdir()
    ctx = BuildContext(
        model=run.model(),
        root=root,
        scratch=scratch,
        calibration=np.zeros((4, 3, 3), np.float32),
        x_val=run.x["val"],
        y_val=run.y["val"],
        float_pred_val=run.y["val"],
        progress=lambda _m: None,
    )
    variants = build_variants(ctx, list(TARGETS))
    by_target = {v.target: v for v in variants}
    for target in ("litert-fp32", "onnxruntime-fp32", "openvino-fp32"):
        assert by_target[target].ok, by_target[target].error
    for target in ("litert-int8", "onnxruntime-int8", "openvino-int8"):
        v = by_target[target]
        assert not v.ok and v.failed_step == "quantise" and v.error
        v.metrics["accuracy"] = 1.0
    y = run.y["test"]
    for target in ("litert-fp32", "onnxruntime-fp32", "openvino-fp32"):
        by_target[target].scores = np.eye(10, dtype=np.float32)[y]  # as if all were right
        by_target[target].pred_all = y
    passed = apply_gate(variants, FloatAnswers(y, y, y, run.labels), GateRules())
    assert {v.target for v in passed} == {"litert-fp32", "onnxruntime-fp32", "openvino-fp32"}
    assert by_target["litert-int8"].reason.startswith("failed during quantise")


def test_recipe_candidates_are_measured_separately(exported: ExportResult) -> None:
    from cloud.export.recipes import INT8_RECIPES

    for v in exported.variants:
        if v.precision != "int8" or len(INT8_RECIPES[v.target]) < 2:
            continue
        assert all(c["latency_ms"] and c["latency_ms"] > 0 for c in v.candidates), v.target
        assert all(c["size"] > 0 and c["error"] is None for c in v.candidates), v.target
        assert [c["timed_calls"] for c in v.candidates] == [CANDIDATE_CALLS] * len(v.candidates)
        assert all(c["val_gate"] in ("kept", "left out") for c in v.candidates)
        assert all(c["threads"] is None or c["threads"] >= 1 for c in v.candidates)
        assert sum(c["chosen"] for c in v.candidates) == 1
        artifact = exported.manifest.artifact(v.runtime, "int8")
        assert artifact is not None and artifact.metrics["recipe"] == v.metrics["recipe"]
