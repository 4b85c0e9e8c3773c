"""The model card of real exports: the digits bundle, and a Keras model on breast cancer."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from cloud.export.pipeline import ExportOptions, ExportResult, export, write_card
from cloud.export.run import TrainingRun

pytestmark = pytest.mark.slow


def _members(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle, "r:gz") as tar:
        out = {}
        for m in tar.getmembers():
            fh = tar.extractfile(m)
            if fh is not None:
                out[m.name] = fh.read()
        return out


def test_digits_card_reviews_every_evaluated_variant(exported: ExportResult) -> None:
    files = _members(exported.bundle)
    card = files["model_card.md"].decode()
    evaluated = [v for v in exported.variants if v.ok and v.scores is not None]
    assert evaluated
    quality = card.split("## Quality of each variant")[1].split("\n## ")[0]
    for v in evaluated:  # each variant a device may serve has its own numbers
        line = next(r for r in quality.splitlines() if r.startswith(f"| `{v.target}` |"))
        assert "% [" in line
    assert "## Gate decisions" in card
    assert "test accuracy (float model) |" in card and "% [" in card
    assert "## Explanation aid: occlusion saliency" in card
    assert "/tmp/" not in card and str(exported.bundle.parent) not in card
    for name in files:
        if name.startswith("charts/"):
            assert f"({name})" in card
    json.loads(files["data-report.json"])  # whole, valid JSON


def test_breast_cancer_card_from_a_real_keras_model(tmp_path: Path) -> None:
    """write_card with a trained Keras model: binary analysis and log-loss importance on
    validation + test rows topped up from training (the split is small)."""
    import keras
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    x = ((data.data - data.data.mean(0)) / data.data.std(0)).astype(np.float32)
    y = (data.target == 0).astype(np.int64)  # 1 = malignant, labels sorted as the trainer does
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    parts = {"train": order[:400], "val": order[400:485], "test": order[485:]}
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((30,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x[parts["train"]], y[parts["train"]], epochs=15, batch_size=32, verbose=0)
    names = [str(n) for n in data.feature_names]
    run = TrainingRun(
        path=tmp_path / "run",
        info={
            "kind": "tabular",
            "seed": 0,
            "labels": ["benign", "malignant"],
            "feature_names": names,
            "dataset": {"source": str(tmp_path / "breast_cancer.csv"), "report": {"samples": 569}},
        },
        reference={},
        x={k: x[v] for k, v in parts.items()},
        y={k: y[v] for k, v in parts.items()},
        _model=model,
    )
    opts = ExportOptions(run_dir=run.path, out=tmp_path / "b.ekb", name="bc", version=1, key=None)
    scores = np.asarray(model.predict(run.x["test"], verbose=0))
    paths = write_card(tmp_path / "bundle", opts, run, scores, [])
    card = (tmp_path / "bundle" / "model_card.md").read_text()
    assert {"roc.png", "precision_recall.png", "feature_importance.png"} <= {p.name for p in paths}
    assert "positive class `malignant`" in card
    assert "the 85 validation and 84 test rows plus 331 training rows" in card
    assert "**relied on**" in card  # log-loss importance finds used features on 500 rows
    assert str(tmp_path) not in card and "`breast_cancer.csv`" in card


def test_exported_bundle_names_no_build_machine_path(
    digits_run: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    """A run whose dataset, hyper-parameters and run dir are absolute paths of this machine:
    no text member of the bundle (card, data report, report.json, manifest) keeps them."""
    import shutil

    run_dir = tmp_path / "home" / "alice" / "runs" / "digits-run"
    shutil.copytree(digits_run, run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    info["dataset"]["source"] = str(tmp_path / "home" / "alice" / "data" / "digits.npz")
    info["hyperparameters"]["cache_dir"] = str(Path.home() / ".cache" / "edgekit")
    info["hyperparameters"]["workdir"] = "/work/scratch/digits"
    (run_dir / "run.json").write_text(json.dumps(info))
    out = tmp_path / "out" / "digits-v1.ekb"
    out.parent.mkdir()
    opts = ExportOptions(
        run_dir=run_dir, out=out, name="digits", version=1, key=keypair[0], targets=["litert-fp32"]
    )
    export(opts, progress=lambda _msg: None)
    files = _members(out)
    texts = {n: b.decode() for n, b in files.items() if n.endswith((".md", ".json"))}
    assert {"model_card.md", "manifest.json", "report.json", "data-report.json"} <= set(texts)
    leaks = [str(tmp_path), str(Path.home()), "/tmp/", "/home/", "/work/", "/root/"]
    for name, text in texts.items():
        for leak in leaks:
            assert leak not in text, (name, leak)
    assert "`digits.npz`" in texts["model_card.md"]
    report = json.loads(texts["report.json"])
    assert report["run_dir"] == "digits-run"
    manifest = json.loads(texts["manifest.json"])
    assert manifest["lineage"]["dataset"]["source"] == "digits.npz"
    assert manifest["lineage"]["hyperparameters"]["workdir"] == "digits"
