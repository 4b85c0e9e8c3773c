"""Field dataset exports (cloud/data/field.py): the description, merges, lineage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cloud.data.dataset import Dataset
from cloud.data.field import (
    META_NAME,
    SCHEMA,
    FieldRecord,
    lineage_versions,
    merge_original,
    read_meta,
    write_export,
)
from cloud.data.sources import load_dataset
from cloud.export.card.overview import dataset_versions as card_versions
from cloud.export.pipeline import dataset_versions
from edge.errors import DataError


def meta(fmt: str, kind: str, data: str, total: int) -> dict[str, object]:
    return {"schema": SCHEMA, "name": "f", "version": 2, "fingerprint": "sha256:00",
            "kind": kind, "format": fmt, "data": data, "label_column": "label",
            "counts": {"total": total, "by_device": {"d1": total}, "by_label": {}},
            "merged": None}  # fmt: skip


def test_read_meta_refuses_what_it_cannot_trust(tmp_path: Path) -> None:
    assert read_meta(tmp_path) is None
    (tmp_path / META_NAME).write_text("{not json")
    with pytest.raises(DataError, match="not a readable"):
        read_meta(tmp_path)
    (tmp_path / META_NAME).write_text(json.dumps({**meta("npz", "array", "../x.npz", 1)}))
    with pytest.raises(DataError, match="'format'"):
        read_meta(tmp_path)


def test_tabular_export_merges_with_a_csv_by_feature_name(tmp_path: Path) -> None:
    recs = [
        FieldRecord(f"{i:032x}", "d1", "b", features={"y": 2.0, "x": 1.0 + i}) for i in range(3)
    ]
    folder = write_export(tmp_path / "out", meta("csv", "tabular", "data.csv", 3), recs)
    original = tmp_path / "orig.csv"
    original.write_text("x,y,label\n0,0,a\n5,5,a\n1,1,b\n")
    done = merge_original(folder, load_dataset(str(original)), original)
    assert done["merged"]["samples"] == 3 and done["samples"] == 6
    ds = load_dataset(str(folder))
    assert ds.feature_names == ["x", "y"] and len(ds.y) == 6
    assert ds.extra["field_dataset"]["merged"]["source"] == "orig.csv"
    versions = lineage_versions(ds, "sha256:ff")
    assert [v["role"] for v in versions] == ["original", "field"]
    assert versions[1]["by_device"] == {"d1": 3} and versions[1]["version"] == 2


def test_array_samples_of_another_shape_do_not_merge(tmp_path: Path) -> None:
    path = tmp_path / "a.npy"
    np.save(path, np.zeros((4, 4), dtype=np.float32))
    folder = write_export(tmp_path / "out", meta("npz", "array", "data.npz", 1),
                          [FieldRecord("0" * 32, "d1", "3", file=path)])  # fmt: skip
    with pytest.raises(DataError, match="cannot be trained together"):
        merge_original(folder, load_dataset("digits"), None)


def test_a_plain_dataset_is_one_original_version() -> None:
    ds = Dataset(x=np.zeros((3, 2)), y=np.array([0, 1, 0]), labels=["a", "b"],
                 kind="tabular", source="/home/me/iris.csv")  # fmt: skip
    assert lineage_versions(ds, "sha256:1") == [
        {"role": "original", "source": "iris.csv", "fingerprint": "sha256:1", "samples": 3}
    ]
    old_run = {"source": "digits", "fingerprint": "sha256:2", "report": {"samples": 9}}
    assert dataset_versions(old_run) == [
        {"role": "original", "source": "digits", "fingerprint": "sha256:2", "samples": 9}
    ]
    assert card_versions(lineage_versions(ds, "sha256:1")) == ""  # nothing to add
    text = card_versions([
        {"role": "original", "source": "digits", "fingerprint": "sha256:2", "samples": 9},
        {"role": "field", "name": "f", "version": 2, "fingerprint": "sha256:3", "samples": 4,
         "by_device": {"d1": 3, "d2": 1}},
    ])  # fmt: skip
    assert "`f@2`" in text and "d1 3, d2 1" in text and "`digits`" in text
