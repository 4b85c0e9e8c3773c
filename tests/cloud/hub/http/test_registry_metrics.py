"""A version's headline metrics come from what the exporter really recorded."""

from __future__ import annotations

import dataclasses
import json
import tarfile
from pathlib import Path

import pytest

from cloud.hub.registry import _metrics
from edge.bundle import read_manifest

BUNDLE = Path(__file__).resolve().parents[4] / "models" / "digits.ekb"


@pytest.mark.skipif(not BUNDLE.exists(), reason="models/digits.ekb not built")
def test_accuracy_is_the_float_models_test_accuracy() -> None:
    manifest = read_manifest(BUNDLE)
    with tarfile.open(BUNDLE) as tar:
        member = tar.extractfile("report.json")
        assert member is not None
        report = json.load(member)
    m = _metrics(manifest, report)
    assert m["accuracy"] == pytest.approx(report["float_model"]["test_accuracy"])
    assert set(m["variant_accuracy"]) == {a.target for a in manifest.artifacts}
    assert 0.9 < m["accuracy"] <= 1.0


@pytest.mark.skipif(not BUNDLE.exists(), reason="models/digits.ekb not built")
def test_without_report_or_lineage_the_best_variant_counts() -> None:
    manifest = dataclasses.replace(read_manifest(BUNDLE), lineage={})
    m = _metrics(manifest, "not a report")
    assert m["accuracy"] == max(a.metrics["accuracy"] for a in manifest.artifacts)
    assert "test_accuracy" not in m
    with_lineage = _metrics(read_manifest(BUNDLE), None)
    assert with_lineage["accuracy"] == with_lineage["test_accuracy"]
