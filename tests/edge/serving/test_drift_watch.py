"""Drift per feature: the worst feature alerts and is named, the confidence histogram is
used, an unshifted stream stays quiet, and scores are computed at snapshot time only."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edge.errors import ContractError
from edge.serving import Monitor, drift
from edge.serving.drift import ConfidenceDrift, dimension_names, psi, psi_rows, validate_reference
from edge.serving.drift_watch import TOP_FEATURES, DriftWatch

LABELS = ["low", "high"]
N_FEATURES = 30


def quantile_hist(values: np.ndarray, k: int = 10) -> dict[str, Any]:
    """One reference histogram the way the trainer builds it (cloud/data/reference.py)."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, k + 1)))
    counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


def reference(
    n: int = 2000, dims: int = N_FEATURES, names: bool = True, seed: int = 0
) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dims))
    conf = np.clip(rng.beta(8, 2, n), 0.5, 1.0)  # a confident two-class model
    inputs: dict[str, Any] = {
        "granularity": "feature",
        "histograms": [quantile_hist(x[:, j]) for j in range(dims)],
    }
    if names:
        inputs["names"] = [f"sensor_{j:02d}" for j in range(dims)]
    conf_hist = quantile_hist(conf)
    conf_hist["edges"][0], conf_hist["edges"][-1] = 0.0, 1.0
    return {
        "schema": "edgekit.reference/1",
        "inputs": inputs,
        "outputs": {"labels": LABELS, "class_mix": [0.5, 0.5], "confidence": conf_hist},
        "n": n,
    }


def feed(
    m: Monitor, n: int, seed: int, shift: dict[int, float] | None = None, conf: Any = None
) -> None:
    """``n`` inferences: standard-normal inputs (some features shifted by ``shift`` stds),
    predictions in the reference class mix, confidences from the reference's distribution
    (or ``conf(rng)``)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        x = rng.normal(size=N_FEATURES).astype(np.float32)
        for j, by in (shift or {}).items():
            x[j] += by
        c = float(conf(rng)) if conf is not None else float(np.clip(rng.beta(8, 2), 0.5, 1.0))
        scores = np.array([c, 1 - c]) if i % 2 else np.array([1 - c, c])
        m.record(1.0, scores, x)


def test_psi_rows_matches_psi_and_ignores_padding() -> None:
    rng = np.random.default_rng(0)
    live = rng.integers(0, 50, (4, 10)).astype(float)
    ref = rng.integers(1, 50, (4, 10)).astype(float)
    live[2, 6:] = ref[2, 6:] = 0  # a feature with 6 bins, padded to 10
    live[3] = 0  # nothing binned yet
    got = psi_rows(live, ref)
    for j in range(3):
        k = 6 if j == 2 else 10
        assert got[j] == pytest.approx(psi(live[j, :k], ref[j, :k]), rel=1e-12)
    assert np.isnan(got[3])


def test_one_shifted_feature_alerts_by_name_although_the_mean_does_not() -> None:
    """The issue's case: one of 30 features moved by 2 std, the mean PSI stays below 0.2."""
    m = Monitor(LABELS, reference())
    feed(m, 1000, seed=1, shift={7: 2.0})
    d = m.snapshot()["drift"]
    assert d["input_psi"] < d["threshold"]
    assert d["worst"]["name"] == "sensor_07" and d["worst"]["psi"] > 2.0
    assert d["features"][0] == d["worst"]
    assert d["alert"] is True and d["alert_on"] == ["feature"]
    assert len(d["features"]) == TOP_FEATURES
    psis = [f["psi"] for f in d["features"]]
    assert psis == sorted(psis, reverse=True)


@pytest.mark.parametrize("n", [200, 1000])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_unshifted_stream_does_not_alert(n: int, seed: int) -> None:
    m = Monitor(LABELS, reference(seed=seed + 10))
    feed(m, n, seed=seed)
    d = m.snapshot()["drift"]
    assert d["alert"] is False and d["alert_on"] == [], d
    assert d["worst"]["psi"] < d["feature_threshold"]
    assert d["confidence_psi"] is not None and d["confidence_psi"] < d["threshold"]


def test_feature_threshold_is_separate_and_configurable() -> None:
    m = Monitor(LABELS, reference())
    feed(m, 1000, seed=4, shift={3: 0.75})  # a moderate shift: PSI ~0.5
    assert m.snapshot()["drift"]["alert_on"] == ["feature"]
    m.set_drift_thresholds(0.2, 5.0)
    d = m.snapshot()["drift"]
    assert d["alert"] is False and d["feature_threshold"] == 5.0
    assert d["worst"]["name"] == "sensor_03"
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="feature_threshold"):
            m.set_drift_thresholds(0.2, bad)
    with pytest.raises(ValueError, match="psi_threshold"):
        Monitor(LABELS, reference(), psi_threshold=float("nan"))


def test_confidence_drift_uses_the_reference_histogram() -> None:
    m = Monitor(LABELS, reference())
    feed(m, 400, seed=5, conf=lambda rng: rng.uniform(0.5, 0.6))  # suddenly unsure
    d = m.snapshot()["drift"]
    assert d["confidence_psi"] > d["threshold"]
    assert "confidence" in d["alert_on"] and "feature" not in d["alert_on"]


def test_confidence_bins_narrower_than_the_resolution_merge() -> None:
    ref = {"edges": [0.0, 0.9, 0.999, 0.99999, 1.0], "counts": [10, 20, 30, 40]}
    c = ConfidenceDrift(ref, window=100, min_samples=1, resolution=0.01)
    assert c.edges.tolist() == [0.0, 0.9, 1.0] and c.expected.tolist() == [10, 90]
    # an int8 variant rounds 0.99999 to 255/256: no drift at this resolution
    for v in [0.5] * 10 + [0.95] * 20 + [255 / 256] * 70:
        c.add(v)
    assert c.score() == pytest.approx(0.0, abs=1e-9)
    wide = ConfidenceDrift(ref, window=10, min_samples=1, resolution=0.5)
    assert wide.edges.tolist() == [0.0, 1.0]


def test_int8_output_step_widens_the_confidence_resolution() -> None:
    ref = reference()
    fine = DriftWatch(ref, LABELS, 1000, 200)
    coarse = DriftWatch(ref, LABELS, 1000, 200, output_step=0.05)
    assert coarse.confidence is not None and fine.confidence is not None
    assert len(coarse.confidence.edges) < len(fine.confidence.edges)
    assert np.all(np.diff(coarse.confidence.edges) >= 0.1 - 1e-12)


def test_names_fall_back_to_feature_and_channel_indices() -> None:
    ref = reference(dims=3, names=False)
    assert dimension_names(ref["inputs"]) == ["feature0", "feature1", "feature2"]
    ref["inputs"]["granularity"] = "channel"
    assert dimension_names(ref["inputs"]) == ["channel0", "channel1", "channel2"]
    m = Monitor(LABELS, ref, min_drift_samples=10)
    for _ in range(20):
        m.record(1.0, np.array([0.9, 0.1]), np.random.default_rng(0).normal(size=(4, 4, 3)) + 3)
    d = m.snapshot()["drift"]
    assert d["granularity"] == "channel" and len(d["features"]) == 3
    assert {f["name"] for f in d["features"]} == {"channel0", "channel1", "channel2"}


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r["inputs"].__setitem__("names", ["only-one"]),
        lambda r: r["inputs"].__setitem__("names", "sensor"),
        lambda r: r["inputs"].__setitem__("names", [1] * N_FEATURES),
        lambda r: r["outputs"].__setitem__("confidence", {"edges": [0, 1], "counts": [1, 2]}),
        lambda r: r["outputs"].__setitem__("confidence", "high"),
    ],
)
def test_bad_names_and_confidence_histograms_are_refused(mutate: Any) -> None:
    ref = reference()
    mutate(ref)
    with pytest.raises(ContractError):
        validate_reference(ref, LABELS)


def test_without_a_reference_or_enough_samples_nothing_alerts() -> None:
    d = Monitor(LABELS).snapshot()["drift"]
    assert d == {
        "input_psi": None, "output_psi": None, "confidence_psi": None, "threshold": 0.2,
        "feature_threshold": 0.3, "alert": False, "alert_on": [], "granularity": None,
        "features": [], "worst": None,
    }  # fmt: skip
    m = Monitor(LABELS, reference())
    feed(m, 199, seed=6, shift={0: 5.0})
    d = m.snapshot()["drift"]
    assert d["alert"] is False and d["features"] == [] and d["worst"] is None


def test_scores_are_computed_at_snapshot_time_not_per_inference(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []
    real = drift.psi_rows

    def counting(*args: Any) -> Any:
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(drift, "psi_rows", counting)
    m = Monitor(LABELS, reference())
    feed(m, 500, seed=7)
    assert calls == []
    m.snapshot()
    assert len(calls) == 1  # one vectorised pass for all 30 features
