"""The statistical gate on synthetic predictions (no TensorFlow, no runtime)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.export.convert import Converted
from cloud.export.gate import FloatAnswers, GateRules, apply_gate, judge
from cloud.export.variants import Variant
from edge.errors import ConfigError


def answers(
    y_test: np.ndarray, test_pred: np.ndarray, extra_pred: np.ndarray, labels: list[str]
) -> FloatAnswers:
    return FloatAnswers(y_test, test_pred, np.concatenate([test_pred, extra_pred]), labels)


def variant(
    target: str, test_pred: np.ndarray, pred_all: np.ndarray, n_classes: int, tmp_path: Path
) -> Variant:
    """An evaluated variant whose backend answered ``test_pred`` / ``pred_all``."""
    model = tmp_path / f"{target}.bin"
    model.write_bytes(b"x")
    v = Variant(target, converted=Converted(model, [], []))
    v.scores = np.eye(n_classes, dtype=np.float32)[test_pred]
    v.pred_all = pred_all
    return v


def flip(pred: np.ndarray, rows: np.ndarray | list[int], n_classes: int = 2) -> np.ndarray:
    out = pred.copy()
    out[rows] = (out[rows] + 1) % n_classes
    return out


@pytest.fixture
def cancer() -> tuple[FloatAnswers, np.ndarray]:
    """Breast-cancer sized: 69 test rows (float gets 66 right) and 569 inputs in all."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 69)
    test_pred = flip(y, [0, 1, 2])
    extra = rng.integers(0, 2, 500)
    return answers(y, test_pred, extra, ["malignant", "benign"]), np.concatenate([test_pred, extra])


def test_one_flipped_answer_of_69_is_kept(
    cancer: tuple[FloatAnswers, np.ndarray], tmp_path: Path
) -> None:
    ans, float_all = cancer
    pred_all = flip(float_all, [10])  # a test row the float model got right
    v = variant("litert-int8", pred_all[:69], pred_all, 2, tmp_path)
    assert apply_gate([v], ans, GateRules()) == [v]
    assert v.included and v.reason == ""
    acc = v.gate["checks"]["accuracy_drop"]
    assert acc["value"] == pytest.approx(100 / 69, abs=1e-3) and acc["n"] == 69
    assert acc["interval"][0] < 0 < 1.0 < acc["interval"][1]  # noise, not a significant drop
    assert v.metrics["accuracy_drop_points"] == acc["value"]
    assert v.gate["decision"] == "kept"
    assert v.gate["reason"].startswith(
        "kept: accuracy drop 1.45 points [-3.90, 7.76] on 69 test rows is not significantly "
        "above 1 point; agreement with float 99.82% ["
    )
    assert "on 569 inputs" in v.gate["reason"] and "worst class" in v.gate["reason"]


def test_many_changed_answers_with_equal_accuracy_are_left_out(
    cancer: tuple[FloatAnswers, np.ndarray], tmp_path: Path
) -> None:
    ans, float_all = cancer
    # On the test split one gain (row 0, float wrong) cancels one loss (row 10); beyond it
    # 44 of 500 unlabelled inputs change: 46 of 569 (8.1 %) in all.
    pred_all = flip(float_all, [0, 10, *range(69, 69 + 44)])
    v = variant("onnxruntime-int8", pred_all[:69], pred_all, 2, tmp_path)
    assert apply_gate([v], ans, GateRules()) == []
    checks = v.gate["checks"]
    assert checks["accuracy_drop"]["value"] == 0.0 and checks["accuracy_drop"]["passed"]
    agree = checks["agreement"]
    assert agree["value"] == pytest.approx(523 / 569, abs=1e-6) and agree["n"] == 569
    assert agree["interval"][1] < 0.98 and not agree["passed"]
    assert v.gate["decision"] == "left out"
    assert v.reason.startswith(
        "agreement with float 91.92% [89.38, 93.88] on 569 inputs is below 98%"
    )


@pytest.fixture
def digits_like() -> tuple[FloatAnswers, np.ndarray]:
    """10 classes, 1800 inputs (300 test rows); class 9 is rare: 30 inputs, 2 in the test."""
    rng = np.random.default_rng(1)
    common = rng.integers(0, 9, 1770)
    float_all = np.concatenate([[9, 9], common[:298], np.full(28, 9), common[298:]])
    y = float_all[:300].copy()
    return answers(y, float_all[:300], float_all[300:], [str(k) for k in range(10)]), float_all


def test_a_variant_that_ruins_one_class_is_left_out_though_the_mean_holds(
    digits_like: tuple[FloatAnswers, np.ndarray], tmp_path: Path
) -> None:
    ans, float_all = digits_like
    pred_all = float_all.copy()
    pred_all[float_all == 9] = 4  # class 9 is never answered any more
    v = variant("openvino-int8", pred_all[:300], pred_all, 10, tmp_path)
    assert apply_gate([v], ans, GateRules()) == []
    checks = v.gate["checks"]
    assert checks["accuracy_drop"]["passed"] and checks["agreement"]["passed"]
    assert checks["agreement"]["value"] == pytest.approx(1 - 30 / 1800)
    cls = checks["class_agreement"]
    assert not cls["passed"] and cls["class"] == "9" and cls["value"] == 0.0 and cls["n"] == 30
    assert [r["class"] for r in cls["per_class"] if not r["passed"]] == ["9"]
    assert len(cls["per_class"]) == 10
    assert v.reason.startswith("class '9': agreement with float 0.00% [0.00, 11.35] on 30 inputs")


def test_a_reason_names_the_three_worst_classes_and_counts_the_rest(
    digits_like: tuple[FloatAnswers, np.ndarray], tmp_path: Path
) -> None:
    ans, float_all = digits_like
    pred_all = (float_all + 1) % 10  # every answer changes: all ten classes fail
    v = variant("litert-int8", pred_all[:300], pred_all, 10, tmp_path)
    assert apply_gate([v], ans, GateRules()) == []
    assert v.reason.count("class '") == 3
    assert v.reason.startswith("accuracy drop ")  # the checks in their fixed order
    assert v.reason.endswith("; 7 more class(es) below the same limit")
    assert len(v.gate["checks"]["class_agreement"]["per_class"]) == 10


def test_one_flip_in_a_class_of_three_cannot_fail_the_class(tmp_path: Path) -> None:
    float_all = np.array([0] * 150 + [1] * 147 + [2] * 3)
    ans = answers(float_all[:60], float_all[:60], float_all[60:], ["a", "b", "c"])
    pred_all = float_all.copy()
    pred_all[-1] = 0  # one of the three inputs of class c (outside the test split)
    v = variant("litert-int8", pred_all[:60], pred_all, 3, tmp_path)
    assert apply_gate([v], ans, GateRules()) == [v]
    cls = v.gate["checks"]["class_agreement"]
    assert cls["class"] == "c" and cls["value"] == pytest.approx(2 / 3, abs=1e-6)
    assert cls["interval"][1] > 0.9 and cls["passed"]


def test_a_significant_accuracy_drop_is_left_out(
    cancer: tuple[FloatAnswers, np.ndarray], tmp_path: Path
) -> None:
    ans, float_all = cancer
    pred_all = flip(float_all, list(range(20, 27)))  # 7 right answers of 69 go wrong
    v = variant("litert-int8", pred_all[:69], pred_all, 2, tmp_path)
    assert apply_gate([v], ans, GateRules(min_agreement=0.0, min_class_agreement=0.0)) == []
    acc = v.gate["checks"]["accuracy_drop"]
    assert acc["interval"][0] > 1.0 and not acc["passed"]
    assert v.reason.startswith("accuracy drop 10.14 points [")
    assert "on 69 test rows is significantly above 1 point" in v.reason


def test_an_explicit_max_drop_also_bounds_the_estimate(
    cancer: tuple[FloatAnswers, np.ndarray], tmp_path: Path
) -> None:
    ans, float_all = cancer
    pred_all = flip(float_all, [10])  # 1.45 points: not significant, but above 1 point
    v = variant("litert-int8", pred_all[:69], pred_all, 2, tmp_path)
    assert apply_gate([v], ans, GateRules(max_accuracy_drop=1.0)) == []
    assert "1.45 points below the float model's 95.65%" in v.reason
    assert "gate: at most 1 point;" in v.reason and "on 69 test rows" in v.reason
    assert apply_gate([v], ans, GateRules(max_accuracy_drop=1.4492)) == []
    assert apply_gate([v], ans, GateRules(max_accuracy_drop=1.4493)) == [v]  # at the limit
    assert "and within 1.4493" in v.gate["reason"]
    same = variant("litert-fp32", float_all[:69], float_all, 2, tmp_path)
    assert apply_gate([same], ans, GateRules(max_accuracy_drop=-1.0)) == []  # wants a gain
    assert "0.00 points below" in same.reason


def test_failed_and_unevaluated_variants_say_why(
    cancer: tuple[FloatAnswers, np.ndarray], tmp_path: Path
) -> None:
    ans, float_all = cancer
    broken = Variant("openvino-int8")
    broken.fail("quantise", RuntimeError("nncf exploded"))
    unmeasured = variant("onnxruntime-fp32", float_all[:69], float_all, 2, tmp_path)
    unmeasured.pred_all = None
    good = variant("litert-fp32", float_all[:69], float_all, 2, tmp_path)
    assert apply_gate([broken, unmeasured, good], ans, GateRules()) == [good]
    assert broken.reason.startswith("failed during quantise: RuntimeError: nncf exploded")
    assert broken.gate == {
        "decision": "left out",
        "reason": broken.reason,
        "confidence": 0.95,
        "checks": {},
    }
    assert unmeasured.reason == "not evaluated" and not unmeasured.included


def test_predictions_of_the_wrong_length_are_refused(
    cancer: tuple[FloatAnswers, np.ndarray], tmp_path: Path
) -> None:
    ans, float_all = cancer
    v = variant("litert-fp32", float_all[:69], float_all[:100], 2, tmp_path)
    with pytest.raises(ValueError, match="do not match"):
        judge(v, ans, GateRules())


def test_gate_block_is_json_and_names_every_field(
    cancer: tuple[FloatAnswers, np.ndarray], tmp_path: Path
) -> None:
    ans, float_all = cancer
    v = variant("litert-int8", float_all[:69], float_all, 2, tmp_path)
    apply_gate([v], ans, GateRules(confidence=0.99))
    row: dict[str, Any] = json.loads(json.dumps(v.row()))
    gate = row["gate"]
    assert set(gate) == {"decision", "reason", "confidence", "checks"}
    assert gate["confidence"] == 0.99
    assert set(gate["checks"]) == {"accuracy_drop", "agreement", "class_agreement"}
    for check in gate["checks"].values():
        assert {"value", "interval", "n", "limit", "unit", "passed"} <= set(check)
        lo, hi = check["interval"]
        assert lo <= check["value"] <= hi
    assert gate["checks"]["agreement"]["interval"] == [
        pytest.approx(569 / (569 + 2.5758**2), abs=1e-5),
        1.0,
    ]
    assert row["included"] is True and row["reason"] == ""


@pytest.mark.parametrize(
    ("rules", "flag"),
    [
        (GateRules(max_accuracy_drop=math.nan), "--max-accuracy-drop"),
        (GateRules(max_accuracy_drop=math.inf), "--max-accuracy-drop"),
        (GateRules(min_agreement=1.5), "--min-agreement"),
        (GateRules(min_agreement=True), "--min-agreement"),
        (GateRules(min_class_agreement=-0.1), "--min-class-agreement"),
        (GateRules(confidence=1.0), "--gate-confidence"),
        (GateRules(confidence=0.5), "--gate-confidence"),
    ],
)
def test_every_threshold_is_validated(rules: GateRules, flag: str) -> None:
    with pytest.raises(ConfigError, match=flag):
        apply_gate([], answers(np.zeros(1), np.zeros(1), np.zeros(0), ["a", "b"]), rules)


def test_rules_describe_the_thresholds() -> None:
    assert GateRules().describe()["max_accuracy_drop_points"] == 1.0
    assert GateRules().describe()["max_accuracy_drop_explicit"] is False
    described = GateRules(max_accuracy_drop=2.5).describe()
    assert described["max_accuracy_drop_points"] == 2.5
    assert described["max_accuracy_drop_explicit"] is True
    assert set(described["methods"]) == {"accuracy_drop", "agreement", "class_agreement"}


@pytest.fixture(scope="module")
def breast_cancer_export(
    tmp_path_factory: pytest.TempPathFactory, keypair: tuple[Path, Path]
) -> tuple[Any, list[str]]:
    """scikit-learn's breast cancer as a CSV with string labels, trained by `edgekit train`'s
    pipeline and exported to the three int8 targets and one fp32."""
    import csv

    from sklearn.datasets import load_breast_cancer

    from cloud.export.pipeline import ExportOptions, export
    from cloud.train.pipeline import TrainOptions, run_training

    data = load_breast_cancer()
    tmp = tmp_path_factory.mktemp("cancer")
    path = tmp / "cancer.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*(n.replace(" ", "_") for n in data.feature_names), "diagnosis"])
        for row, target in zip(data.data, data.target, strict=True):
            writer.writerow([*(f"{v:.6g}" for v in row), data.target_names[target]])
    run_training(
        TrainOptions(dataset=str(path), out=tmp / "run", label_column="diagnosis", epochs=40),
        stream=None,
    )
    lines: list[str] = []
    opts = ExportOptions(
        run_dir=tmp / "run",
        out=tmp / "cancer-v1.ekb",
        name="cancer",
        version=1,
        key=keypair[0],
        targets=["litert-fp32", "litert-int8", "onnxruntime-int8", "openvino-int8"],
    )
    return export(opts, progress=lines.append), lines


@pytest.mark.slow
def test_breast_cancer_int8_variants_ship_with_the_interval_that_decided(
    breast_cancer_export: tuple[Any, list[str]],
) -> None:
    result, lines = breast_cancer_export
    report = result.report
    gate = report["gate"]
    assert gate["confidence"] == 0.95 and gate["max_accuracy_drop_explicit"] is False
    assert gate["min_agreement"] == 0.98 and gate["min_class_agreement"] == 0.9
    inputs = gate["agreement_inputs"]
    assert inputs["total"] == 569 and not inputs["subsampled"]  # every row, no labels needed
    assert inputs["test"] == report["float_model"]["test_samples"]
    for row in report["variants"]:
        checks = row["gate"]["checks"]
        assert checks["agreement"]["n"] == 569, row["target"]
        assert checks["accuracy_drop"]["n"] == inputs["test"]
        assert {r["class"] for r in checks["class_agreement"]["per_class"]} <= {
            "malignant",
            "benign",
        }
        for check in checks.values():
            lo, hi = check["interval"]
            assert lo <= check["value"] <= hi
        if row["precision"] == "int8":
            # A tiny MLP quantises almost losslessly: the int8 variants ship.
            assert row["included"], row["gate"]["reason"]
            assert row["gate"]["decision"] == "kept" and row["reason"] == ""
            assert row["gate"]["reason"].startswith("kept: accuracy drop ")
            assert row["agreement_all"] == checks["agreement"]["value"]
    assert set(report["included"]) >= {"litert-int8", "onnxruntime-int8", "openvino-int8"}
    kept = [line for line in lines if line.startswith("gate litert-int8: kept: accuracy drop")]
    assert kept and "on 569 inputs" in kept[0]
    manifest_gate = result.manifest.lineage["export"]["gate"]
    assert manifest_gate["max_accuracy_drop_points"] == 1.0
    assert set(result.manifest.labels) == {"benign", "malignant"}
