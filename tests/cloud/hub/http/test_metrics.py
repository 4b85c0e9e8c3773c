"""The hub's ``/metrics`` parsed back with prometheus_client's parser: exact integers,
labels that sum without double counting, the latency histogram merged from devices'
buckets, counters that survive device restarts, hub restarts and span hub processes."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from cloud.hub.app import create_app
from cloud.hub.config import HubConfig
from edge.contract import LATENCY_BUCKETS_S, ModelRef, Telemetry, encode_json, topic
from edge.serving import Monitor
from tests.cloud.hub import helpers
from tests.cloud.hub.helpers import feed

MV = (("model", "digits"), ("version", "1"))
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(app: Any) -> Samples:
    resp = app.test_client().get("/metrics")
    assert resp.status_code == 200 and resp.content_type.startswith("text/plain; version=")
    return parse(resp.data.decode())


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def family(got: Samples, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in got.items() if n == name}


def telemetry(
    device: str, seq: int, boot: str = "boot1", version: int = 1, **metrics: Any
) -> tuple[str, bytes]:
    m: dict[str, Any] = {"interval_s": 10, "inferences": 50, "errors": {"timeout": 1},
                         "rejected_inputs": {"shape": 2}}  # fmt: skip
    m.update(metrics)
    t = Telemetry(device, time.time(), seq, ModelRef("digits", version), m, boot)
    return topic(device, "telemetry"), encode_json(t.to_dict())


def monitor_histogram(latencies_ms: list[float]) -> dict[str, Any]:
    """The ``latency_histogram`` a real agent monitor reports for these latencies."""
    m = Monitor(["a", "b"])
    for ms in latencies_ms:
        m.record(ms, np.array([0.9, 0.1]))
    hist: dict[str, Any] = m.snapshot()["latency_histogram"]
    return hist


def buckets(got: Samples, labels: tuple[tuple[str, str], ...] = MV) -> list[tuple[float, float]]:
    name = "edgekit_inference_latency_seconds_bucket"
    rows = [(float(dict(k)["le"]), v) for k, v in family(got, name).items()
            if tuple(p for p in k if p[0] != "le") == labels]  # fmt: skip
    return sorted(rows)


def test_counters_are_exact_integers_past_a_million(app: Any) -> None:
    feed(app, telemetry("d1", 1, inferences=1_234_567), telemetry("d1", 2, inferences=1_000_001))
    feed(app, telemetry("d2", 1, inferences=987_654_321, errors={"timeout": 3, "backend": 4}))
    text = app.test_client().get("/metrics").data.decode()
    got = parse(text)
    assert got[("edgekit_inferences_total", MV)] == 1_234_567 + 1_000_001 + 987_654_321
    assert got[("edgekit_inference_errors_total", MV)] == 1 + 1 + 7
    assert got[("edgekit_rejected_inputs_total", MV)] == 6
    assert "e+05" not in text and "1.23457e" not in text  # no rounding to 6 digits
    assert "_ms" not in text and "inference_rate" not in text  # base units, counters


def test_device_and_bridge_labels_sum_without_double_counting(app: Any) -> None:
    feed(app, helpers.status("on-1"), helpers.status("on-2"),
         helpers.status("off-1", state="offline"), telemetry("on-1", 1),
         telemetry("on-1", 1),  # a duplicate
         (topic("on-2", "telemetry"), b"not json"))  # fmt: skip
    got = scrape(app)
    devices = family(got, "edgekit_devices")
    assert devices == {(("state", "online"),): 2, (("state", "offline"),): 1}
    enrollment = family(got, "edgekit_devices_by_enrollment")
    assert sum(enrollment.values()) == sum(devices.values()) == 3
    results = family(got, "edgekit_bridge_messages_total")
    assert results[(("result", "stored"),)] == 4
    assert results[(("result", "duplicate"),)] == 1 and results[(("result", "rejected"),)] == 1
    assert sum(results.values()) == 6  # every message fed, once
    kinds = family(got, "edgekit_bridge_stored_messages_total")
    assert kinds == {(("kind", "status"),): 3, (("kind", "telemetry"),): 1, (("kind", "event"),): 0}
    assert sum(kinds.values()) == results[(("result", "stored"),)]
    assert got[("edgekit_version_devices", MV)] == 2


def test_latency_histogram_merged_from_two_devices(app: Any) -> None:
    fast = [0.3, 0.7, 0.9, 4.0, 4.0]  # ms
    slow = [40.0, 80.0, 2_000.0, 45_000.0]
    h1, h2 = monitor_histogram(fast), monitor_histogram(slow)
    feed(app, telemetry("d1", 1, inferences=5, latency_histogram=h1),
         telemetry("d2", 1, inferences=4, latency_histogram=h2))  # fmt: skip
    got = scrape(app)
    merged = buckets(got)
    assert [le for le, _ in merged] == [*LATENCY_BUCKETS_S, float("inf")]
    counts = [v for _, v in merged]
    assert counts == sorted(counts), "buckets must be cumulative (monotone)"
    expected = np.cumsum(np.add(h1["counts"], h2["counts"])).tolist()
    assert counts == expected
    for le, v in merged:  # the count at each bound is exactly the latencies <= it
        assert v == sum(1 for ms in fast + slow if ms / 1000 <= le)
    assert got[("edgekit_inference_latency_seconds_count", MV)] == 9
    assert abs(got[("edgekit_inference_latency_seconds_sum", MV)] - sum(fast + slow) / 1e3) < 1e-6


def test_unmergeable_histograms_are_skipped_but_the_telemetry_is_kept(app: Any) -> None:
    good = monitor_histogram([1.0])
    other_bounds = {"le": [0.1, 1.0], "counts": [1, 0, 0], "sum_s": 0.05}
    bad = [other_bounds, {"le": [0.2, 0.1], "counts": [0, 0, 0], "sum_s": 0},
           {**good, "counts": [-1] * len(good["counts"])}, {**good, "counts": [1]},
           {**good, "sum_s": "fast"}, "histogram", [1, 2]]  # fmt: skip
    others = [telemetry("d1", 2 + i, inferences=1, latency_histogram=h) for i, h in enumerate(bad)]
    feed(app, telemetry("d1", 1, inferences=1, latency_histogram=good), *others)
    got = scrape(app)
    assert got[("edgekit_inferences_total", MV)] == 1 + len(bad)  # every payload stored
    assert got[("edgekit_inference_latency_seconds_count", MV)] == 1  # only the good one merged
    assert family(got, "edgekit_bridge_messages_total")[(("result", "rejected"),)] == 0


def test_device_restart_is_no_counter_reset(app: Any) -> None:
    """A restarted agent (new boot) starts its seq and inferences_total again: the hub's
    counter, summed from interval counts, keeps going up."""
    bridge = feed(app, telemetry("d1", 1, inferences=10, inferences_total=10),
                  telemetry("d1", 2, inferences=10, inferences_total=20))  # fmt: skip
    bridge.flush([telemetry("d1", 1, boot="b2", inferences=3, inferences_total=3)])
    bridge.flush([telemetry("d1", 2, inferences=10, inferences_total=20)])  # a QoS 1 repeat
    assert scrape(app)[("edgekit_inferences_total", MV)] == 23


def test_counters_survive_a_hub_restart_and_add_up_across_hub_processes(
    hub_config: HubConfig,
) -> None:
    first, second = create_app(hub_config), create_app(hub_config)  # two hub processes
    try:
        feed(first, telemetry("d1", 1, inferences=7, latency_histogram=monitor_histogram([2.0])))
        feed(second, telemetry("d2", 1, inferences=5, latency_histogram=monitor_histogram([3.0])))
        a, b = scrape(first), scrape(second)
        assert a == b  # whichever process answers the scrape
        assert a[("edgekit_inferences_total", MV)] == 12
        assert a[("edgekit_inference_latency_seconds_count", MV)] == 2
        assert a[("edgekit_bridge_messages_total", (("result", "stored"),))] == 2
    finally:
        for app in (first, second):
            app.extensions["edgekit_hub"].stop()
            app.extensions["edgekit_hub"].db.dispose()
    again = create_app(hub_config)  # restarted
    try:
        got = scrape(again)
        assert got[("edgekit_inferences_total", MV)] == 12
        assert got[("edgekit_inference_latency_seconds_count", MV)] == 2
    finally:
        again.extensions["edgekit_hub"].stop()
        again.extensions["edgekit_hub"].db.dispose()


def test_bridge_counters_are_saved_once(app: Any) -> None:
    bridge = feed(app, helpers.status("d1"))
    bridge.persist_counters()  # nothing new: adds nothing
    bridge.counters["received"] += 2
    bridge.persist_counters()
    bridge.persist_counters()
    got = scrape(app)
    assert got[("edgekit_bridge_received_messages_total", ())] == 2
    assert got[("edgekit_bridge_messages_total", (("result", "stored"),))] == 1


def test_no_version_series_before_any_telemetry(app: Any) -> None:
    got = scrape(app)
    assert not family(got, "edgekit_inferences_total")
    assert not family(got, "edgekit_inference_latency_seconds_bucket")
    assert family(got, "edgekit_devices") == {(("state", "online"),): 0, (("state", "offline"),): 0}
