"""Monitor KPIs: percentile error bound, PSI behaviour, class mix, accuracy, error rates."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edge.errors import ContractError
from edge.serving import Monitor
from edge.serving.drift import load_reference, psi, validate_reference
from edge.serving.monitor import LATENCY_REL_ERROR, LatencyHistogram

LABELS = ["cat", "dog", "fox"]
METRIC_KEYS = {
    "interval_s",
    "uptime_s",
    "inferences",
    "inferences_total",
    "errors",
    "error_rate",
    "rejected_inputs",
    "input_guard",
    "latency_ms",
    "throughput_per_s",
    "confidence_mean",
    "class_mix",
    "drift",
    "accuracy",
    "cpu_percent",
    "memory_rss_mb",
    "outbox",
}


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make_reference(
    rng: np.random.Generator, granularity: str = "feature", dims: int = 4, k: int = 10
) -> dict[str, Any]:
    """A reference.json built the way the trainer does: histograms of standard normals."""
    hists = []
    for _ in range(dims):
        counts, edges = np.histogram(rng.normal(size=20_000), bins=k)
        hists.append({"edges": edges.tolist(), "counts": counts.tolist()})
    return {
        "schema": "edgekit.reference/1",
        "inputs": {"granularity": granularity, "names": [f"f{i}" for i in range(dims)],
                   "histograms": hists},
        "outputs": {"labels": LABELS, "class_mix": [0.5, 0.3, 0.2],
                    "confidence": {"edges": [0.0, 0.5, 1.0], "counts": [10, 90]}},
        "n": 20_000,
    }  # fmt: skip


def one_hot(i: int, conf: float = 0.9) -> np.ndarray:
    s = np.full(len(LABELS), (1 - conf) / (len(LABELS) - 1))
    s[i] = conf
    return s


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_percentiles_within_documented_bound(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(mean=1.5, sigma=1.0, size=5000)
    hist = LatencyHistogram()
    for v in values:
        hist.add(float(v))
    for q in (50, 95, 99):
        exact = float(np.percentile(values, q, method="inverted_cdf"))  # nearest rank
        est = hist.percentile(q)
        assert est is not None
        assert abs(est - exact) / exact <= LATENCY_REL_ERROR + 1e-12, (q, est, exact)
    summary = hist.summary()
    assert summary["max"] == pytest.approx(values.max())
    assert summary["mean"] == pytest.approx(values.mean())


def test_percentiles_of_empty_and_single_and_extreme() -> None:
    hist = LatencyHistogram()
    assert hist.summary() == {"p50": None, "p95": None, "p99": None, "mean": None, "max": None}
    hist.add(3.0)
    assert hist.percentile(50) == 3.0  # clamped to the observed min/max
    hist.add(1e9)  # beyond the last bucket: reported as the max
    assert hist.percentile(99) == 1e9
    with pytest.raises(ValueError):
        LatencyHistogram(np.array([1.0, 1.0, 2.0]))


def test_psi_same_distribution_is_small_shifted_is_large() -> None:
    rng = np.random.default_rng(7)
    ref = make_reference(rng)
    same = Monitor(LABELS, ref)
    shifted = Monitor(LABELS, ref)
    for _ in range(1000):
        scores = rng.dirichlet([5, 3, 2])
        same.record(1.0, scores, rng.normal(size=(1, 4)).astype(np.float32))
        shifted.record(1.0, scores, rng.normal(loc=0.8, size=(1, 4)).astype(np.float32))
    d_same = same.snapshot()["drift"]
    d_shift = shifted.snapshot()["drift"]
    assert d_same["input_psi"] < 0.05
    assert d_shift["input_psi"] > 0.2
    assert d_shift["alert"] is True
    assert d_same["threshold"] == 0.2


def test_channel_granularity_for_images() -> None:
    rng = np.random.default_rng(3)
    ref = make_reference(rng, granularity="channel", dims=3)
    m = Monitor(LABELS, ref, min_drift_samples=50)
    for _ in range(60):
        m.record(1.0, one_hot(0), rng.normal(size=(1, 8, 8, 3)))
    assert m.snapshot()["drift"]["input_psi"] < 0.05
    for _ in range(1000):  # the window slides: old inputs fall out
        m.record(1.0, one_hot(0), rng.normal(scale=3.0, size=(1, 8, 8, 3)))
    assert m.snapshot()["drift"]["input_psi"] > 0.2


def test_output_psi_from_class_mix() -> None:
    rng = np.random.default_rng(5)
    m = Monitor(LABELS, make_reference(rng), min_drift_samples=100)
    pattern = [0] * 5 + [1] * 3 + [2] * 2  # exactly the reference mix
    for i in range(1000):
        m.record(1.0, one_hot(pattern[i % 10]))
    snap = m.snapshot()
    assert snap["drift"]["output_psi"] < 0.01
    assert snap["class_mix"] == {"cat": 0.5, "dog": 0.3, "fox": 0.2}
    for _ in range(1000):
        m.record(1.0, one_hot(2))
    d = m.snapshot()["drift"]
    assert d["output_psi"] > 1.0 and d["alert"] is True


def test_drift_needs_enough_samples_and_a_reference() -> None:
    rng = np.random.default_rng(0)
    m = Monitor(LABELS, make_reference(rng), min_drift_samples=200)
    for _ in range(50):
        m.record(1.0, one_hot(0), rng.normal(loc=5, size=4))
    d = m.snapshot()["drift"]
    assert d["input_psi"] is None and d["output_psi"] is None and d["alert"] is False
    no_ref = Monitor(LABELS)
    no_ref.record(1.0, one_hot(0), np.zeros(4))
    assert no_ref.snapshot()["drift"]["input_psi"] is None


def test_mismatched_input_shapes_are_counted_not_fatal() -> None:
    m = Monitor(LABELS, make_reference(np.random.default_rng(0)))
    m.record(1.0, one_hot(0), np.zeros(7))  # 7 values cannot be 4 features
    m.record(1.0, one_hot(0), np.array([np.nan, 0.0, 0.0, 0.0]))
    assert m.drift_detail()["input_mismatches"] == 1
    assert m.snapshot()["inferences"] == 2


def test_snapshot_keys_interval_reset_and_totals() -> None:
    clock = FakeClock()
    m = Monitor(LABELS, clock=clock)
    for i in range(8):
        m.record(2.0 + i, one_hot(i % 2, conf=0.8), true_label=LABELS[0])
    m.record_error("timeout")
    m.record_error("timeout")
    m.record_rejection("shape")
    clock.t += 4.0
    snap = m.snapshot(outbox={"queued": 3, "dropped": 1, "bytes": 99})
    assert set(snap) == METRIC_KEYS | {"latency_histogram"}  # optional on the wire
    assert snap["interval_s"] == 4.0 and snap["uptime_s"] == 4.0
    assert snap["inferences"] == 8 and snap["throughput_per_s"] == 2.0
    assert snap["errors"] == {"timeout": 2}
    assert snap["error_rate"] == pytest.approx(2 / 10)
    assert snap["rejected_inputs"] == {"shape": 1}
    assert snap["confidence_mean"] == pytest.approx(0.8)
    assert snap["class_mix"] == {"cat": 0.5, "dog": 0.5, "fox": 0.0}
    assert snap["accuracy"] == {"value": 0.5, "n": 8}
    assert snap["outbox"] == {"queued": 3, "dropped": 1}
    assert snap["latency_ms"]["max"] == 9.0

    clock.t += 10.0
    empty = m.snapshot()
    assert empty["inferences"] == 0 and empty["inferences_total"] == 8
    assert empty["errors"] == {} and empty["error_rate"] == 0.0
    assert empty["latency_ms"]["p95"] is None and empty["confidence_mean"] is None
    assert empty["class_mix"] == {}
    assert empty["accuracy"] == {"value": 0.5, "n": 8}  # a rolling window, not per interval
    assert empty["outbox"] is None


def test_accuracy_accepts_index_labels_and_ignores_unknown() -> None:
    m = Monitor(LABELS)
    m.record(1.0, one_hot(1), true_label=1)
    m.record(1.0, one_hot(1), true_label="dog")
    m.record(1.0, one_hot(1), true_label=0)
    m.record(1.0, one_hot(1), true_label=17)  # not a label index: ignored
    assert m.snapshot()["accuracy"] == {"value": pytest.approx(2 / 3), "n": 3}


def test_bad_scores_count_as_errors() -> None:
    m = Monitor(LABELS)
    m.record(1.0, np.array([0.5, 0.5]))
    m.record(1.0, np.array([np.nan, 0.5, 0.5]))
    m.record(float("nan"), one_hot(0))
    snap = m.snapshot()
    assert snap["errors"] == {"bad_output": 2}
    assert snap["inferences"] == 1 and snap["latency_ms"]["max"] == 0.0


def test_error_rate_recent_and_latency_recent() -> None:
    m = Monitor(LABELS)
    assert m.error_rate_recent(10) == 0.0
    for _ in range(90):
        m.record(5.0, one_hot(0))
    for _ in range(10):
        m.record_error("backend")
    assert m.error_rate_recent(10) == 1.0
    assert m.error_rate_recent(100) == pytest.approx(0.1)
    assert m.recent_outcomes(1000) == (100, 10)
    assert m.latency_recent(100) == 5.0
    m.snapshot()  # snapshots do not reset the rolling window
    assert m.error_rate_recent(20) == pytest.approx(0.5)


def test_cpu_and_memory_reported() -> None:
    pytest.importorskip("psutil")
    m = Monitor(LABELS)
    snap = m.snapshot()
    assert snap["memory_rss_mb"] > 1
    assert snap["cpu_percent"] >= 0


def test_psi_function() -> None:
    assert psi(np.array([10, 20, 30]), np.array([1, 2, 3])) == pytest.approx(0.0)
    assert psi(np.array([0, 0, 10]), np.array([5, 5, 0])) > 5  # epsilon keeps it finite
    with pytest.raises(ValueError):
        psi(np.array([0, 0]), np.array([1, 1]))


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.update(schema="other/1"),
        lambda r: r["inputs"].update(granularity="pixel"),
        lambda r: r["inputs"].update(histograms=[]),
        lambda r: r["inputs"]["histograms"][0].update(edges=[0.0, 1.0]),
        lambda r: r["inputs"]["histograms"][0].update(edges=list(range(11))[::-1]),
        lambda r: r["inputs"]["histograms"][0].update(counts=[-1] * 10),
        lambda r: r["outputs"].update(class_mix=[1.0]),
        lambda r: r["outputs"].update(labels=["a", "b", "c"]),
    ],
)
def test_bad_references_refused(mutate: Any) -> None:
    ref = make_reference(np.random.default_rng(0))
    mutate(ref)
    with pytest.raises(ContractError):
        Monitor(LABELS, ref)


def test_load_reference_file(tmp_path: Any) -> None:
    import json

    ref = make_reference(np.random.default_rng(0))
    (tmp_path / "reference.json").write_text(json.dumps(ref))
    assert validate_reference(load_reference(tmp_path / "reference.json", LABELS)) == ref
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ContractError, match="cannot be read"):
        load_reference(tmp_path / "bad.json")


def test_large_images_are_subsampled_without_losing_the_signal() -> None:
    from edge.serving.drift import MAX_ROWS, InputDrift

    rng = np.random.default_rng(11)
    ref = make_reference(rng, granularity="channel", dims=3)
    same = InputDrift(ref["inputs"], window=50, min_samples=10)
    shifted = InputDrift(ref["inputs"], window=50, min_samples=10)
    for _ in range(20):
        same.add(rng.normal(size=(1, 64, 64, 3)))
        shifted.add(rng.normal(loc=0.7, size=(1, 64, 64, 3)))
    assert int(same.totals[0].sum()) <= 20 * MAX_ROWS
    assert (same.score() or 1.0) < 0.02
    assert (shifted.score() or 0.0) > 0.2


def test_non_finite_values_are_not_binned() -> None:
    from edge.serving.drift import InputDrift

    ref = make_reference(np.random.default_rng(0))
    drift = InputDrift(ref["inputs"], window=10, min_samples=1)
    drift.add(np.array([np.nan, np.inf, -np.inf, 0.0]))
    assert drift.totals.sum(axis=1).tolist() == [0, 0, 0, 1]
    image = InputDrift(make_reference(np.random.default_rng(0), "channel", 2)["inputs"], 10, 1)
    image.add(np.array([[np.nan, 0.0]] * 20))
    assert image.totals.sum(axis=1).tolist() == [0, 20]


def test_inputs_are_binned_in_batches_but_every_reading_sees_them() -> None:
    from edge.serving.drift import PENDING_BATCH, InputDrift

    ref = make_reference(np.random.default_rng(3), granularity="channel", dims=3)
    drift = InputDrift(ref["inputs"], window=100, min_samples=3)
    image = np.zeros((1, 64, 64, 3), dtype=np.float32)
    for _ in range(3):
        drift.add(image)
    assert len(drift._pending) == 3  # not binned on the hot path
    assert drift.score() is not None and not drift._pending  # reading flushes
    for _ in range(PENDING_BATCH):
        drift.add(image)
    assert not drift._pending  # a full batch is binned at once
    assert int(drift.totals[0].sum()) == (3 + PENDING_BATCH) * 256


def test_image_subsamples_move_so_successive_inputs_cover_the_image() -> None:
    from edge.serving.drift import MAX_ROWS, InputDrift

    ref = make_reference(np.random.default_rng(4), granularity="channel", dims=1)
    drift = InputDrift(ref["inputs"], window=1000, min_samples=1)

    def picked(rows: int) -> list[int]:
        index = np.arange(rows, dtype=np.float64)  # each row holds its own index
        got = drift._subset(index, rows).ravel().astype(int).tolist()
        assert len(got) == MAX_ROWS == len(set(got))
        return got

    rows = 64 * 64
    seen: set[int] = set()
    for _ in range(200):
        seen.update(picked(rows))
    assert seen == set(range(rows))  # a fixed subsample would cover 256 rows, forever the same
    odd = 300 * 7  # not a multiple of the runs: all but the last rows % RUNS are reached
    covered = {i for _ in range(400) for i in picked(odd)}
    assert covered == set(range(odd - odd % 32))


def test_a_shift_in_one_channel_of_full_size_images_is_detected_on_the_subsample() -> None:
    """224x224x3 inputs are binned on 256 pixels per channel: one channel brightened by
    one standard deviation still alerts by name, and the unshifted ones stay quiet."""
    from edge.serving.drift import MAX_ROWS
    from edge.serving.drift_watch import DriftWatch

    rng = np.random.default_rng(12)
    ref = make_reference(rng, granularity="channel", dims=3)
    watch = DriftWatch(ref, LABELS, window=300, min_samples=200)
    for _ in range(300):
        image = rng.normal(size=(1, 224, 224, 3)).astype(np.float32)
        image[..., 1] += 1.0
        watch.add_input(image)
    assert int(watch.inputs.totals.sum()) == 300 * MAX_ROWS * 3  # a subsample, every input
    block = watch.block()
    assert block["worst"]["name"] == "f1" and block["worst"]["psi"] > 0.2
    assert "feature" in block["alert_on"]
    others = [f["psi"] for f in block["features"] if f["name"] != "f1"]
    assert max(others) < 0.05


def test_out_of_range_inputs_are_counted_per_feature_with_a_bounded_block() -> None:
    m = Monitor(LABELS)
    assert m.snapshot()["input_guard"] == {"out_of_range": 0, "features": {}, "more_features": 0}
    m.record_out_of_range(["b", "a"])
    m.record_out_of_range(["a"])
    for i in range(12):  # more features than a telemetry payload names
        m.record_out_of_range([f"f{i:02d}"])
    block = m.snapshot()["input_guard"]
    assert block["out_of_range"] == 14 and block["more_features"] == 4
    assert len(block["features"]) == 10
    assert list(block["features"].items())[:3] == [("a", 2), ("b", 1), ("f00", 1)]  # ranked
    assert m.snapshot()["input_guard"]["out_of_range"] == 0  # per interval
