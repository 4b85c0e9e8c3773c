"""The model card has every section the issue asks for, with valid PNG charts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.export.card import write_model_card
from edge.errors import DataError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _run(kind: str) -> dict[str, Any]:
    return {
        "name": "toy",
        "kind": kind,
        "arch": "mlp",
        "seed": 5,
        "code_version": "abc123",
        "created": "2025-01-01T00:00:00Z",
        "hyperparameters": {"epochs": 3, "batch_size": 32, "hidden": [16, 8]},
        "dataset": {
            "source": "synthetic",
            "fingerprint": "sha256:" + "0" * 64,
            "report": {
                "classes": {"a": 60, "b": 60, "c": 60},
                "split_classes": {
                    "train": {"a": 40, "b": 40, "c": 40},
                    "val": {"a": 10, "b": 10, "c": 10},
                },
                "splits": {"train": 120, "val": 30, "test": 30},
                "feature_ranges": {"x0": [0, 1]},
            },
        },
    }


def _variants(float_scores: np.ndarray) -> list[dict[str, Any]]:
    flipped = float_scores.copy()
    flipped[:3] = flipped[:3, ::-1]  # int8 variant that disagrees on 3 samples (at most)
    base = {"included": True, "reason": "", "latency_p95_ms": 0.2}
    return [
        {
            **base,
            "target": "litert-fp32",
            "runtime": "litert",
            "precision": "fp32",
            "accuracy": 0.9,
            "agreement": 1.0,
            "size": 12_000,
            "latency_ms": 0.1,
            "speedup_vs_fp32": 1.0,
        },
        {
            **base,
            "target": "litert-int8",
            "runtime": "litert",
            "precision": "int8",
            "accuracy": 0.88,
            "agreement": 0.9,
            "size": 5_000,
            "latency_ms": 0.05,
            "speedup_vs_fp32": 2.0,
            "scores": flipped,
        },
        {
            **base,
            "target": "onnxruntime-int8",
            "runtime": "onnxruntime",
            "precision": "int8",
            "included": False,
            "reason": "accuracy drop 3.2 points > gate 1.0",
            "accuracy": 0.6,
            "agreement": 0.7,
            "size": 6_000,
            "latency_ms": 0.3,
            "speedup_vs_fp32": 0.5,
        },
        {
            **base,
            "target": "openvino-int8",
            "runtime": "openvino",
            "precision": "int8",
            "included": False,
            "reason": "runtime not installed",
            "accuracy": None,
            "agreement": None,
            "size": None,
            "latency_ms": None,
            "latency_p95_ms": None,
            "speedup_vs_fp32": None,
        },
    ]


SECTIONS = [
    "# Model card: toy v3",
    "## Intended use and limitations",
    "## Data and lineage",
    "## Performance",
    "## Confusion matrix",
    "## Calibration",
    "## Runtime variants",
    "## How quantisation changed the model",
    "## Explanation aid",
]


def _check_common(card: str, paths: list[Path], out: Path) -> None:
    for title in SECTIONS:
        assert title in card, title
    for needle in ("sha256:" + "0" * 64, "abc123", "batch_size", "| a | 60 |", "ECE"):
        assert needle in card, needle
    assert "accuracy drop 3.2 points > gate 1.0" in card
    assert "runtime not installed" in card
    assert "2.00x" in card
    for p in paths:
        assert p.exists() and p.stat().st_size > 0
        if p.suffix == ".png":
            assert p.read_bytes()[:8] == PNG_MAGIC
            assert f"(charts/{p.name})" in card  # every chart is linked from the card
    assert (out / "model_card.md") in paths


def test_image_card_has_every_section_and_saliency(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    x = rng.uniform(0, 0.1, size=(30, 8, 8, 1)).astype(np.float32)
    for c in range(3):
        x[y == c, c * 2 : c * 2 + 3, :, 0] += 1.0  # each class lights its own rows

    def predict(a: np.ndarray) -> np.ndarray:
        rows = np.stack([a[:, c * 2 : c * 2 + 3, :, 0].mean(axis=(1, 2)) for c in range(3)], 1)
        return _softmax(8 * rows)

    scores = predict(x)
    paths = write_model_card(
        tmp_path,
        name="toy",
        version=3,
        run=_run("image"),
        labels=["a", "b", "c"],
        y_true=y,
        float_scores=scores,
        variants=_variants(scores),
        predict_fn=predict,
        x_test=x,
        feature_names=None,
    )
    card = (tmp_path / "model_card.md").read_text()
    _check_common(card, paths, tmp_path)
    names = {p.name for p in paths}
    assert {"confusion_matrix.png", "reliability.png", "variants.png", "saliency.png"} <= names
    assert "occlusion saliency" in card
    # the disagreement count comes from the int8 scores: exactly the flipped samples that changed
    flipped = _variants(scores)[1]["scores"]
    n_dis = int((flipped.argmax(1) != scores.argmax(1)).sum())
    assert f"{n_dis} / 30" in card
    assert "| **a** | 10 | 0 | 0 |" in card  # confusion matrix as a markdown table


def test_tabular_card_ranks_the_informative_feature(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 4)).astype(np.float32)
    y = np.digitize(x[:, 2], [-0.43, 0.43])  # only "petal" decides the class

    def predict(a: np.ndarray) -> np.ndarray:
        z = a[:, 2:3] * np.array([[-6.0, 0.0, 6.0]])
        z[:, 1] = 2.0 - 6 * np.abs(a[:, 2])
        return _softmax(z)

    scores = predict(x)
    paths = write_model_card(
        tmp_path,
        name="toy",
        version=3,
        run=_run("tabular"),
        labels=["a", "b", "c"],
        y_true=y,
        float_scores=scores,
        variants=_variants(scores),
        predict_fn=predict,
        x_test=x,
        feature_names=["sepal", "width", "petal", "noise"],
    )
    card = (tmp_path / "model_card.md").read_text()
    _check_common(card, paths, tmp_path)
    assert "feature_importance.png" in {p.name for p in paths}
    table = card.split("permutation feature importance")[1]
    first_row = next(line for line in table.splitlines() if line.startswith("| `"))
    assert first_row.startswith("| `petal`")


def test_card_without_variants_still_writes(tmp_path: Path) -> None:
    x = np.eye(2, dtype=np.float32)[[0, 1, 0, 1]]
    scores = _softmax(x * 3)
    paths = write_model_card(
        tmp_path,
        name="toy",
        version=3,
        run={},
        labels=["a", "b"],
        y_true=np.array([0, 1, 0, 1]),
        float_scores=scores,
        variants=[],
        predict_fn=lambda a: _softmax(a * 3),
        x_test=x,
        feature_names=["p", "q"],
    )
    card = (tmp_path / "model_card.md").read_text()
    assert "No variants were exported." in card
    assert "No int8 variant" in card
    assert all(p.exists() for p in paths)


def test_mismatched_labels_and_scores_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="3 labels"):
        write_model_card(
            tmp_path,
            name="toy",
            version=1,
            run={},
            labels=["a", "b", "c"],
            y_true=np.array([0, 1]),
            float_scores=np.full((2, 2), 0.5),
            variants=[],
            predict_fn=lambda a: a,
            x_test=np.zeros((2, 2)),
        )
    with pytest.raises(DataError, match="x_test has 3"):
        write_model_card(
            tmp_path,
            name="toy",
            version=1,
            run={},
            labels=["a", "b"],
            y_true=np.array([0, 1]),
            float_scores=np.full((2, 2), 0.5),
            variants=[],
            predict_fn=lambda a: a,
            x_test=np.zeros((3, 2)),
        )


def _binary_setup() -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(86, 4)).astype(np.float32)
    y = (x[:, 0] + 0.4 * x[:, 1] + rng.normal(scale=0.5, size=86) > 0).astype(np.int64)

    def predict(a: np.ndarray) -> np.ndarray:
        z = 2.5 * a[:, 0] + 1.0 * a[:, 1]
        return _softmax(np.stack([-z, z], axis=1) / 2)

    return x, y, predict(x), predict


def test_binary_card_for_review_has_every_new_section_and_no_paths(tmp_path: Path) -> None:
    from cloud.card_info import CardInfo
    from cloud.export.fairness import group_report

    x, y, scores, predict = _binary_setup()
    int8 = scores.copy()
    int8[:3] = int8[:3, ::-1]
    run = _run("tabular")
    run["dataset"]["source"] = "/home/alice/secret/breast_cancer.csv"
    run["dataset"]["report"]["features"] = [
        {"name": f"f{i}", "min": 0.0, "max": 1.0, "mean": 0.5, "std": 0.2} for i in range(200)
    ]
    run["warnings"] = ["best epoch was the last (20/20): the model may be under-fit"]
    gate = {
        "decision": "kept",
        "reason": "kept",
        "confidence": 0.95,
        "checks": {
            "agreement": {
                "value": 0.99,
                "interval": [0.98, 0.996],
                "n": 569,
                "limit": 0.98,
                "unit": "fraction",
                "passed": True,
            },
        },
    }
    rows = [
        {
            "target": "litert-fp32",
            "runtime": "litert",
            "precision": "fp32",
            "included": True,
            "accuracy": None,
            "scores": scores,
            "gate": gate,
        },
        {
            "target": "litert-int8",
            "runtime": "litert",
            "precision": "int8",
            "included": True,
            "accuracy": None,
            "scores": int8,
            "gate": gate,
        },
        {
            "target": "onnxruntime-int8",
            "runtime": "onnxruntime",
            "precision": "int8",
            "included": False,
            "error": "cannot read /tmp/edgekit-export-q/scratch/m.onnx",
        },
    ]
    sites = np.array(["north", "south"])[np.arange(86) % 2]
    groups = group_report(
        column="site",
        y_true=y,
        groups=sites,
        float_scores=scores,
        variants=rows,
        n_classes=2,
    )
    info = CardInfo(owners=("ML team",), license="Apache-2.0", citation="Doe 2025")
    names = ["benign", "malignant"]
    paths = write_model_card(
        tmp_path,
        name="toy",
        version=3,
        run=run,
        labels=names,
        y_true=y,
        float_scores=scores,
        variants=rows,
        predict_fn=predict,
        x_test=x,
        feature_names=["radius", "texture", "n1", "n2"],
        groups=groups,
        card_info=info,
    )
    card = (tmp_path / "model_card.md").read_text()
    order = [
        "# Model card: toy v3",
        "## Training warnings",
        "## Intended use and limitations",
        "## Data and lineage",
        "## Performance",
        "## Two-class analysis",
        "## Confusion matrix",
        "## Calibration",
        "## Metrics per group",
        "## Runtime variants",
        "## Quality of each variant",
        "## Gate decisions",
        "## How quantisation changed the model",
        "## Explanation aid: permutation feature importance",
        "## Citation",
    ]
    positions = [card.index(title) for title in order]
    assert positions == sorted(positions)
    assert "| ROC-AUC |" in card and "| license | Apache-2.0 |" in card
    assert "| shipped variants (test accuracy) | `litert-fp32`" in card
    assert "/home/" not in card and "/tmp/" not in card
    assert "`breast_cancer.csv`" in card and "cannot read m.onnx" in card
    names_written = {p.name for p in paths}
    assert {"roc.png", "precision_recall.png", "variant_reliability.png"} <= names_written
    report = tmp_path / "data-report.json"
    assert report in paths
    doc = json.loads(report.read_text())
    assert len(doc["features"]) == 200 and "/home/" not in report.read_text()
    for p in paths:
        if p.suffix == ".png":
            assert f"(charts/{p.name})" in card


def test_image_card_shows_saliency_on_a_mistake(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 10)
    x = rng.uniform(0, 0.1, size=(30, 8, 8, 1)).astype(np.float32)
    for c in range(3):
        x[y == c, c * 2 : c * 2 + 3, :, 0] += 1.0
    x[0, 0:3, :, 0] -= 1.0
    x[0, 2:5, :, 0] += 1.0  # one image of class a that looks like b

    def predict(a: np.ndarray) -> np.ndarray:
        rows = np.stack([a[:, c * 2 : c * 2 + 3, :, 0].mean(axis=(1, 2)) for c in range(3)], 1)
        return _softmax(8 * rows)

    scores = predict(x)
    assert int(np.sum(scores.argmax(1) != y)) >= 1
    write_model_card(
        tmp_path,
        name="toy",
        version=3,
        run=_run("image"),
        labels=["a", "b", "c"],
        y_true=y,
        float_scores=scores,
        variants=[],
        predict_fn=predict,
        x_test=x,
    )
    card = (tmp_path / "model_card.md").read_text()
    assert "3 correctly classified test images" in card
    assert "misclassified test images" in card and "WRONG" in card
