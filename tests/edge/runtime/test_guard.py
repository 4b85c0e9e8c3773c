"""Range guards from a reference's per-feature histogram edges: what is flagged, in which
mode, with which message; bad references and settings refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.bundle import extract_bundle
from edge.contract import FileEntry
from edge.errors import ConfigError, ContractError, InputError
from edge.runtime import FeatureRanges, RangeGuard, prepare
from tests.edge.runtime.test_inputs import IMG, TAB

MODELS = Path(__file__).resolve().parents[3] / "models"


def reference(edges: list[list[float]], names: list[str] | None = None) -> dict[str, Any]:
    hists = [{"edges": e, "counts": [1] * (len(e) - 1)} for e in edges]
    inputs: dict[str, Any] = {"granularity": "feature", "histograms": hists}
    if names is not None:
        inputs["names"] = names
    return {"schema": "edgekit.reference/1", "inputs": inputs}


# TAB: features a, b, c with mean [1, 2, 3], std [1, 2, 0 (as 1)]; model-domain train ranges
REF = reference([[-1.0, 0.0, 1.0], [-2.0, 2.0], [0.0, 0.5, 4.0]])
REF_EDGES = [[-1.0, 1.0], [-2.0, 2.0], [0.0, 4.0]]
RANGES = FeatureRanges.from_reference(TAB, REF)


def ranges() -> FeatureRanges:
    assert RANGES is not None
    return RANGES


def test_ranges_are_the_first_and_last_edges_with_the_manifests_names() -> None:
    r = ranges()
    assert r.names == ("a", "b", "c")
    assert r.low.tolist() == [-1.0, -2.0, 0.0] and r.high.tolist() == [1.0, 2.0, 4.0]
    assert r.raw(1, 2.0) == 6.0  # 2 * std 2 + mean 2: back in the user's units
    assert r.raw(2, 1.0) == 4.0  # a zero std counts as 1, as in prepare()
    named = FeatureRanges.from_reference(TAB, reference(REF_EDGES, ["x", "y", "z"]))
    assert named is not None and named.names == ("x", "y", "z")


def test_models_without_feature_ranges_are_not_guarded() -> None:
    assert FeatureRanges.from_reference(IMG, REF) is None  # images have raw_range already
    channel = {**REF, "inputs": {**REF["inputs"], "granularity": "channel"}}
    assert FeatureRanges.from_reference(TAB, channel) is None
    assert FeatureRanges.from_reference(TAB, None) is None


@pytest.mark.parametrize(
    ("ref", "match"),
    [
        (reference([[-1.0, 1.0]]), "1 feature histograms for a model of 3 inputs"),
        (reference([[-1.0, 1.0], [0.0], [0.0, 1.0]]), r"histograms\[1\] has no edges"),
        (reference([[-1.0, 1.0], ["x", 1.0], [0.0, 1.0]]), "not numbers"),  # type: ignore[list-item]
        (reference([[-1.0, 1.0], [2.0, 1.0], [0.0, 1.0]]), "not a range"),
        (reference([[-1.0, 1.0], [0.0, float("inf")], [0.0, 1.0]]), "not a range"),
    ],
)
def test_references_that_do_not_fit_are_refused(ref: dict[str, Any], match: str) -> None:
    with pytest.raises(ContractError, match=match):
        FeatureRanges.from_reference(TAB, ref)


def test_margin_widens_the_range_by_training_spans() -> None:
    guard = RangeGuard(ranges(), "warn", 0.25)  # feature a: span 2, allowed -1.5..1.5
    assert guard.outside(np.array([[1.49, 0.0, 0.0]], np.float32)) is None
    mask = guard.outside(np.array([[1.51, 0.0, 0.0], [0.0, 0.0, 0.0]], np.float32))
    assert mask is not None and mask.tolist() == [[True, False, False], [False] * 3]
    exact = RangeGuard(ranges(), "warn", 0.0)  # the training extremes themselves pass
    assert exact.outside(np.array([[-1.0, 2.0, 4.0]], np.float32)) is None
    assert RangeGuard(ranges(), "off").outside(np.full((1, 3), 1e30, np.float32)) is None


def test_absurd_value_is_named_in_the_users_units() -> None:
    x = prepare(TAB, {"a": 1e30, "b": 2.0, "c": 3.0})
    features, message = RangeGuard(ranges()).check(x)
    assert features == ["a"]
    assert message == ("feature 'a' = 1e+30 is outside its training range 0..2 (allowed -0.5..2.5)")
    with pytest.raises(InputError) as info:
        RangeGuard(ranges(), "refuse").enforce(x)
    assert info.value.code == "range" and str(info.value).endswith(message)
    assert RangeGuard(ranges(), "warn").enforce(x) == message


def test_batch_messages_name_the_sample_and_stop_after_three() -> None:
    x = np.array([[0.0, 0.0, 0.0], [9.0, 9.0, 9.0], [9.0, 0.0, 0.0]], np.float32)
    guard = RangeGuard(ranges())
    features, message = guard.check(x)
    assert features == ["a", "b", "c"]
    assert message is not None and "(sample 1)" in message
    assert message.endswith("and 1 more value(s)")


@pytest.mark.parametrize(
    ("mode", "margin"),
    [
        ("block", 0.25),
        ("warn", -0.1),
        ("warn", float("nan")),
        ("warn", float("inf")),
        ("warn", True),
        ("refuse", "1"),
    ],
)
def test_bad_settings_are_config_errors(mode: str, margin: Any) -> None:
    with pytest.raises(ConfigError, match="input guard"):
        RangeGuard(ranges(), mode, margin)


finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(st.lists(finite, min_size=3, max_size=3), st.floats(min_value=0.0, max_value=3.0))
def test_flagged_exactly_when_past_the_widened_range(values: list[float], margin: float) -> None:
    x = np.asarray([values], dtype=np.float32)
    r = ranges()
    mask = RangeGuard(r, "warn", margin).outside(x)
    lo, hi = r.low - margin * (r.high - r.low), r.high + margin * (r.high - r.low)
    v = x[0].astype(np.float64)
    clearly_out = (v < lo - 1e-3) | (v > hi + 1e-3)
    clearly_in = (v > lo + 1e-3) & (v < hi - 1e-3)
    got = np.zeros(3, bool) if mask is None else mask[0]
    assert not (got & clearly_in).any() and (got | ~clearly_out).all()


def test_reference_bundle_ranges_and_a_broken_reference(tmp_path: Path) -> None:
    bundle = MODELS / "tabular.ekb"
    if not bundle.exists():
        pytest.skip("models/tabular.ekb not built")
    dest = tmp_path / "t"
    manifest = extract_bundle(bundle, dest, MODELS / "dev-signing.pub")
    r = FeatureRanges.for_bundle(dest, manifest)
    assert r is not None and len(r.names) == 30 and r.names[0] == "mean_radius"
    assert (r.low < r.high).all()
    assert FeatureRanges.for_bundle(dest, dataclasses.replace(manifest, reference=None)) is None
    assert manifest.reference is not None
    (dest / manifest.reference.file).write_text("{not json")
    with pytest.raises(ContractError, match="cannot be read"):
        FeatureRanges.for_bundle(dest, manifest)
    missing = dataclasses.replace(manifest, reference=FileEntry("nope.json", "0" * 64, 1))
    with pytest.raises(ContractError, match="cannot be read"):
        FeatureRanges.for_bundle(dest, missing)
