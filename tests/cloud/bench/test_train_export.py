"""The benchmarks' bundle builder: a real train + export through the edgekit CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloud.bench.train_export import (
    digits_subset,
    mobilenet_train_args,
    run_edgekit,
    train_and_export,
)
from edge.errors import EdgekitError


def test_digits_subset_takes_the_first_samples_of_every_class(tmp_path: Path) -> None:
    path = digits_subset(tmp_path / "s.npz", 3)
    with np.load(path) as d:
        assert d["x"].shape == (30, 8, 8) and d["x"].dtype == np.float32
        assert np.bincount(d["y"]).tolist() == [3] * 10


def test_a_failing_command_is_an_edgekit_error(capsys: pytest.CaptureFixture[str]) -> None:
    logged: list[str] = []
    with pytest.raises(EdgekitError, match="edgekit keys failed with exit"):
        run_edgekit(["keys", "--no-such-flag"], logged.append, stdout_to_stderr=True)
    assert logged == ["$ edgekit keys --no-such-flag"]


def test_mobilenet_recipe_sets_the_epochs_and_keeps_the_realistic_size() -> None:
    args = mobilenet_train_args(epochs=2)
    assert args[args.index("--epochs") + 1] == "2"
    assert args[args.index("--input-size") + 1] == "224" and "mobilenetv2" in args


@pytest.mark.slow
def test_train_and_export_writes_a_signed_bundle(tmp_path: Path) -> None:
    from cloud.keys import generate_keypair
    from edge.bundle import extract_bundle

    key, pub = generate_keypair(tmp_path / "keys")
    data = str(digits_subset(tmp_path / "s.npz", 5))
    bundle = train_and_export(
        "tiny", data, tmp_path, key, ["--epochs", "1"], print, ("--targets", "litert-fp32")
    )
    assert bundle == tmp_path / "tiny.ekb"
    extract_bundle(bundle, tmp_path / "out", pub)
    assert (tmp_path / "out" / "manifest.json").exists()
