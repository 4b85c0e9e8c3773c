"""A field dataset export, merged with the original data, trains with ``edgekit train``
and its versions travel into the bundle: ``lineage.datasets`` and the model card name the
original and the field version and how many samples came from which devices."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cloud.data.field import SCHEMA, FieldRecord, merge_original, write_export
from cloud.data.sources import load_dataset
from cloud.keys import generate_keypair
from edge.cli.main import main

pytestmark = pytest.mark.slow


def test_train_and_export_carry_the_dataset_versions(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32)[:30]
    records = []
    for i, img in enumerate(images):
        path = tmp_path / "npy" / f"{i}.npy"
        path.parent.mkdir(exist_ok=True)
        np.save(path, img[..., None], allow_pickle=False)
        records.append(FieldRecord(f"{i:032x}", "shift-0" if i < 20 else "shift-1", str(i % 10),
                                   file=path))  # fmt: skip
    meta = {"schema": SCHEMA, "name": "digits-field", "version": 3, "fingerprint": "sha256:ab",
            "kind": "array", "format": "npz", "data": "data.npz", "label_column": "label",
            "counts": {"total": 30, "by_device": {"shift-0": 20, "shift-1": 10},
                       "by_label": {}}, "merged": None}  # fmt: skip
    folder = write_export(tmp_path / "field", meta, records)
    merge_original(folder, load_dataset("digits"), None)

    run = tmp_path / "run"
    assert main(["train", str(folder), "--out", str(run), "--arch", "mlp", "--epochs", "2",
                 "--name", "digits", "--quiet"]) == 0  # fmt: skip
    versions = json.loads((run / "run.json").read_text())["dataset"]["versions"]
    assert [v["role"] for v in versions] == ["original", "field"]
    assert versions[0]["source"] == "digits" and versions[0]["samples"] == 1797
    assert versions[1]["by_device"] == {"shift-0": 20, "shift-1": 10}

    key, _pub = generate_keypair(tmp_path / "keys")
    bundle = tmp_path / "digits-v4.ekb"
    args = ["export", str(run), "--out", str(bundle), "--name", "digits", "--version", "4",
            "--targets", "litert-fp32", "--key", str(key), "--golden-size", "16"]  # fmt: skip
    assert main(args) == 0
    with tarfile.open(bundle) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        card = tar.extractfile("model_card.md").read().decode()  # type: ignore[union-attr]
    datasets = manifest["lineage"]["datasets"]
    assert datasets[1] == {**versions[1]}
    assert {"role": "field", "name": "digits-field", "version": 3}.items() <= datasets[1].items()
    assert "Dataset versions" in card and "`digits-field@3`" in card
    assert "shift-0 20, shift-1 10" in card
