"""A CSV with a group column, excluded text columns and card info through real training and
export: the group never becomes a feature, reaches the card and report.json, and a device
answers a named-feature request without it (slow: Keras + ONNX Runtime)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cloud.data.groups import MISSING_GROUP
from cloud.export.pipeline import ExportOptions, export
from cloud.train.pipeline import TrainOptions, run_training
from edge.bundle import extract_bundle
from edge.errors import InputError
from edge.runtime import Predictor

FEATURES = ["f1", "f2", "f3"]


def _write_csv(path: Path, n: int = 360) -> None:
    rng = np.random.default_rng(3)
    lines = ["id,f1,site,note,f2,label,f3"]
    for i in range(n):
        f1, f2, f3 = rng.normal(size=3)
        site = ["north", "south", "east", ""][i % 4] if i % 9 else ""
        label = "good" if f1 + 0.5 * f2 > 0 else "bad"
        lines.append(f"row{i},{f1:.4f},{site},free text {i},{f2:.4f},{label},{f3:.4f}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.slow
def test_group_column_reaches_the_card_but_never_the_device(
    tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    csv = tmp_path / "parts.csv"
    _write_csv(csv)
    train_card = tmp_path / "train-card.toml"
    train_card.write_text('owners = ["Train team"]\nlicense = "MIT"\n')
    export_card = tmp_path / "export-card.json"
    export_card.write_text(
        json.dumps(
            {
                "owners": ["Release team"],
                "license": "Apache-2.0",
                "intended_uses": ["sorting parts on line 3"],
                "out_of_scope_uses": ["anything safety-critical"],
            }
        )
    )
    run_dir = tmp_path / "run"
    run = run_training(
        TrainOptions(
            dataset=str(csv),
            out=run_dir,
            epochs=15,
            patience=5,
            group_column="site",
            exclude_columns=["id", "note"],
            card_info=train_card,
        ),
        stream=None,
    )
    assert run["feature_names"] == FEATURES
    assert run["preprocessing"]["features"] == FEATURES
    assert run["excluded_columns"] == ["id", "note"]
    assert run["card_info"] == {"owners": ["Train team"], "license": "MIT"}
    groups = run["groups"]
    assert groups["column"] == "site"
    assert groups["values"] == sorted(["north", "south", "east", MISSING_GROUP])
    with np.load(run_dir / "data.npz") as data:
        for part in ("train", "val", "test"):
            assert data[f"group_{part}"].shape == data[f"y_{part}"].shape
            counts = dict(zip(*np.unique(data[f"group_{part}"], return_counts=True), strict=True))
            assert {str(k): int(v) for k, v in counts.items()} == groups["counts"][part]
        assert data["x_test"].shape[1] == len(FEATURES)

    bundle = tmp_path / "parts-v1.ekb"
    result = export(
        ExportOptions(
            run_dir=run_dir,
            out=bundle,
            name="parts",
            version=1,
            key=keypair[0],
            targets=["onnxruntime-fp32", "onnxruntime-int8"],
            card_info=export_card,
        ),
        progress=lambda _m: None,
    )
    report = result.report
    block = report["groups"]
    assert block["column"] == "site" and block["split"] == "test"
    float_rows = block["models"]["float"]["groups"]
    assert sum(r["n"] for r in float_rows) == report["float_model"]["test_samples"]
    correct = sum(r["correct"] for r in float_rows)
    assert correct / report["float_model"]["test_samples"] == pytest.approx(
        report["float_model"]["test_accuracy"], abs=1e-6
    )
    assert {"onnxruntime-fp32", "onnxruntime-int8"} <= set(block["models"])
    assert "note" in block["models"]["float"]["gap"]
    assert report["card_info"]["owners"] == ["Release team"]  # export overrides train

    manifest = result.manifest
    assert manifest.preprocessing["features"] == FEATURES  # the device never needs the group
    assert manifest.lineage["group_column"] == "site"
    assert manifest.lineage["excluded_columns"] == ["id", "note"]

    with tarfile.open(bundle) as tar:
        member = tar.extractfile("model_card.md")
        assert member is not None
        card = member.read().decode("utf-8")
    assert "## Metrics per group" in card and "`(missing)`" in card
    assert "Release team" in card and "Apache-2.0" in card and "Train team" not in card
    assert "- sorting parts on line 3" in card and "- anything safety-critical" in card

    dest = tmp_path / "device"
    m = extract_bundle(bundle, dest, keypair[1])
    with Predictor.open(dest, m, "onnxruntime", "fp32") as p:
        pred = p.predict({"f1": 1.0, "f2": 0.5, "f3": 0.0})
        assert pred.label == "good"
        with pytest.raises(InputError, match="unknown feature"):
            p.predict({"f1": 1.0, "f2": 0.5, "f3": 0.0, "site": 1.0})
