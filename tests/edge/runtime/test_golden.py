"""The golden set: reading it (and refusing bad ones), comparing scores, the tolerance."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from edge.bundle import entry_path, extract_bundle
from edge.contract import Manifest
from edge.errors import SelfTestError
from edge.runtime import Predictor, Tolerance, compare, load_golden, run_golden
from edge.runtime import predictor as predictor_module
from edge.runtime.golden import golden_check
from tests.edge.agent_kit import kit_fixture  # noqa: F401 - pytest fixture "kit"


@pytest.fixture
def extracted(kit: dict[str, Path], tmp_path: Path) -> tuple[Path, Manifest]:
    dest = tmp_path / "bundle"
    return dest, extract_bundle(kit["v1"], dest, kit["pub"])


def golden_file(bundle: tuple[Path, Manifest]) -> Path:
    dest, manifest = bundle
    assert manifest.golden is not None
    return entry_path(dest, manifest.golden.entry)


def test_load_golden_gives_float32_arrays(extracted: tuple[Path, Manifest]) -> None:
    arrays = load_golden(*extracted)
    assert arrays["inputs"].dtype == np.float32 and arrays["outputs"].dtype == np.float32
    assert len(arrays["inputs"]) == len(arrays["outputs"]) == 16


def test_predictor_still_exports_the_golden_api() -> None:
    assert predictor_module.load_golden is load_golden
    assert predictor_module.golden_check is golden_check


@pytest.mark.parametrize(
    ("arrays", "match"),
    [
        ({"inputs": np.zeros((2, 8, 8, 1))}, "needs arrays 'inputs' and 'outputs'"),
        ({"inputs": np.zeros((2, 8, 8, 1)), "outputs": np.zeros((3, 10))}, "2 inputs and 3"),
        ({"inputs": np.zeros((0, 8, 8, 1)), "outputs": np.zeros((0, 10))}, "0 inputs"),
    ],
)
def test_bad_golden_sets_are_refused(
    extracted: tuple[Path, Manifest], arrays: dict[str, np.ndarray], match: str
) -> None:
    with golden_file(extracted).open("wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]
    with pytest.raises(SelfTestError, match=match):
        load_golden(*extracted)


def test_unreadable_or_missing_golden(extracted: tuple[Path, Manifest]) -> None:
    dest, manifest = extracted
    golden_file(extracted).write_bytes(b"not an npz")
    with pytest.raises(SelfTestError, match="unreadable"):
        load_golden(dest, manifest)
    with pytest.raises(SelfTestError, match="no golden set"):
        load_golden(dest, dataclasses.replace(manifest, golden=None))


def test_compare() -> None:
    expected = np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32)
    assert compare(expected, expected) == (0.0, 1.0)
    mae, top1 = compare(expected[:, ::-1], expected)
    assert mae == pytest.approx(0.7) and top1 == 0.0
    assert compare(np.full_like(expected, np.nan), expected) == (float("inf"), 0.0)
    with pytest.raises(SelfTestError, match="output shape"):
        compare(expected[:1], expected)


def test_tolerance_defaults_are_strict(extracted: tuple[Path, Manifest]) -> None:
    _dest, manifest = extracted
    assert manifest.golden is not None
    bare = dataclasses.replace(manifest, golden=dataclasses.replace(manifest.golden, tolerance={}))
    tol = Tolerance.of(bare)
    assert (tol.max_mean_abs_error, tol.min_top1_agreement) == (0.05, 0.95)
    assert tol.allows(0.01, 1.0)
    assert not tol.allows(0.06, 1.0) and not tol.allows(0.01, 0.9)
    assert not tol.allows(float("inf"), 1.0) and not tol.allows(float("nan"), 1.0)


def test_golden_check_and_run_golden_agree(
    kit: dict[str, Path], extracted: tuple[Path, Manifest], tmp_path: Path
) -> None:
    dest, manifest = extracted
    with Predictor.open(dest, manifest, "onnxruntime", "fp32") as p:
        result = golden_check(p)
        assert result["mean_abs_error"] < 1e-5 and result["top1_agreement"] == 1.0
        golden = load_golden(dest, manifest)
        one_by_one = run_golden(p, golden["inputs"])
        assert compare(one_by_one, golden["outputs"])[1] == 1.0
    bad_dest = tmp_path / "bad"
    bad = extract_bundle(kit["bad_golden2"], bad_dest, kit["pub"])
    refused = pytest.raises(SelfTestError, match="onnxruntime-fp32: golden mean abs error")
    with Predictor.open(bad_dest, bad, "onnxruntime", "fp32") as p, refused:
        golden_check(p)
