"""Which rows the gate's agreement uses, and that batching them changes no answer."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloud.export.evaluate import (
    ExtraInputs,
    agreement_rows,
    infer_each,
    infer_extra,
)
from edge.bundle import extract_bundle
from edge.runtime import create

MODELS = Path(__file__).resolve().parents[3] / "models"


def _splits(shape: tuple[int, ...], train: int, val: int, test: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        s: rng.normal(size=(n, *shape)).astype(np.float32)
        for s, n in (("train", train), ("val", val), ("test", test))
    }


def test_tabular_sets_use_every_row() -> None:
    x = _splits((30,), 398, 102, 69)
    rows = agreement_rows(x, seed=0, cap=100)  # the cap is for images only
    assert rows.total == 569 and not rows.subsampled and rows.cap is None
    assert rows.describe() == {
        "train": 398, "val": 102, "test": 69, "total": 569, "cap": None, "subsampled": False,
    }  # fmt: skip
    batches = list(rows.batches(x, 256))
    assert [len(b) for b in batches] == [256, 142, 102]
    assert np.array_equal(np.concatenate(batches), np.concatenate([x["train"], x["val"]]))


def test_image_sets_are_capped_by_a_seeded_subsample_that_keeps_the_test_rows() -> None:
    x = _splits((4, 4, 1), 900, 200, 150)
    rows = agreement_rows(x, seed=3, cap=500)
    assert rows.total == 500 and rows.test == 150 and rows.subsampled and rows.cap == 500
    assert len(rows.index["train"]) + len(rows.index["val"]) == 350
    for split, n in (("train", 900), ("val", 200)):
        idx = rows.index[split]
        assert np.all(np.diff(idx) > 0) and (len(idx) == 0 or 0 <= idx[0] <= idx[-1] < n)
    again = agreement_rows(x, seed=3, cap=500)
    assert all(np.array_equal(rows.index[s], again.index[s]) for s in ("train", "val"))
    other = agreement_rows(x, seed=4, cap=500)
    assert not np.array_equal(rows.index["train"], other.index["train"])
    # Small image sets are not subsampled; a test split above the cap keeps all its rows.
    assert not agreement_rows(x, seed=0, cap=5000).subsampled
    assert agreement_rows(x, seed=0, cap=100).total == 150


def test_float_answers_follow_the_row_order() -> None:
    x = _splits((3,), 10, 5, 4)
    rows = agreement_rows(x, seed=0)
    extra = ExtraInputs.predicted(rows, x, lambda b: np.stack([b[:, 0], b[:, 1]], axis=1))
    both = np.concatenate([x["train"], x["val"]])
    assert np.array_equal(extra.float_pred, (both[:, 1] > both[:, 0]).astype(int))


@pytest.mark.parametrize("name", ["tabular", "digits"])
def test_batched_answers_equal_single_sample_answers(name: str, tmp_path: Path) -> None:
    """Every runtime of a reference bundle, fp32 and int8, on 500 perturbed inputs."""
    bundle = MODELS / f"{name}.ekb"
    if not bundle.exists():
        pytest.skip(f"models/{name}.ekb not built")
    manifest = extract_bundle(bundle, tmp_path / "b", MODELS / "dev-signing.pub")
    assert manifest.golden is not None
    with np.load(tmp_path / "b" / manifest.golden.entry.file) as npz:
        golden = npz["inputs"]
    rng = np.random.default_rng(0)
    noisy = golden[rng.integers(0, len(golden), 500)]
    noisy = noisy + rng.normal(0, 0.5 if name == "tabular" else 0.1, noisy.shape)
    x = {"train": noisy.astype(np.float32), "val": golden[:0], "test": golden[:1]}
    rows = agreement_rows(x, seed=0)
    for artifact in manifest.artifacts:
        backend = create(artifact.runtime)
        backend.load(tmp_path / "b" / artifact.file, artifact)
        try:
            single, _ = infer_each(backend, x["train"])
            extra = ExtraInputs(rows, x, single.argmax(axis=1))
            assert np.array_equal(infer_extra(backend, extra), extra.float_pred), artifact.target
        finally:
            backend.close()
    assert len(manifest.artifacts) == 6
