"""A device's clock and counters cannot push its state into the future: a report stamped
far ahead is stored at arrival time, and one huge ``seq`` does not freeze the KPIs (the
finding "one message with a huge seq froze a device's KPIs for minutes"). Messages go
through the bridge's real parse-and-store path, as in test_device_reports."""

from __future__ import annotations

import time
from typing import Any

from cloud.hub.ingest.device_reports import MAX_CLOCK_SKEW_S, MAX_SEQ_STEP, Report, newer
from cloud.hub.storage import EventRow, TelemetryRaw
from edge.contract import Event, encode_json, topic
from tests.cloud.hub.ingest.test_device_reports import device, feed, status, tel


def test_a_report_stamped_far_ahead_is_stored_at_arrival_time(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    now = time.time()
    bridge = feed(hub, [status("fut", 1, now + 10 * 365 * 86400, 0)])
    assert bridge.counters["clock_clamped"] == 1
    d = device(hub, "fut")
    assert d.model_version == 1 and d.model_ts is not None
    assert d.model_ts <= time.time() + MAX_CLOCK_SKEW_S
    # the device's real clock (seconds later) moves the model on: nothing is frozen
    feed(hub, [tel("fut", 2, time.time() + 1, 0)])
    d = device(hub, "fut")
    assert d.model_version == 2 and d.model_src == "telemetry"


def test_future_telemetry_and_events_are_clamped_in_the_store(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    far = time.time() + 1e9
    e = Event("fc", far, 0, "info", "hello", boot="A")
    bridge = feed(hub, [tel("fc", 1, far, 0), (topic("fc", "events"), encode_json(e.to_dict()))])
    assert bridge.counters["clock_clamped"] == 2 and bridge.counters["stored"] == 2
    limit = time.time() + MAX_CLOCK_SKEW_S
    with hub.db.session() as s:
        assert s.query(TelemetryRaw).filter_by(device_id="fc").one().ts <= limit
        assert s.query(EventRow).filter_by(device_id="fc").one().ts <= limit
    d = device(hub, "fc")
    assert d.kpis_ts is not None and d.kpis_ts <= limit


def test_a_small_skew_is_believed(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    ahead = time.time() + MAX_CLOCK_SKEW_S / 2
    bridge = feed(hub, [tel("sk", 1, ahead, 0)])
    assert bridge.counters["clock_clamped"] == 0
    assert device(hub, "sk").kpis_ts == ahead


def test_one_message_with_a_huge_seq_does_not_freeze_the_kpis(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    t0 = time.time()
    feed(hub, [status("hs", 1, t0, 0), tel("hs", 1, t0, 10, p95=2.0)])
    feed(hub, [tel("hs", 1, t0 + 0.5, 2**62, p95=999.0)])  # the forged (or buggy) one
    assert device(hub, "hs").kpis["p95_latency_ms"] == 999.0
    # the device's next report, one interval later, takes over again
    feed(hub, [tel("hs", 1, t0 + 1.0, 11, p95=3.0)])
    d = device(hub, "hs")
    assert d.kpis["p95_latency_ms"] == 3.0 and d.kpis_seq == 11
    feed(hub, [tel("hs", 1, t0 + 2.0, 12, p95=4.0)])  # and counting goes on normally
    assert device(hub, "hs").kpis["p95_latency_ms"] == 4.0


def test_a_huge_seq_with_an_old_clock_changes_nothing(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    t0 = time.time()
    feed(hub, [tel("ho", 1, t0, 10, p95=2.0)])
    feed(hub, [tel("ho", 1, t0 - 100, 2**62, p95=999.0)])
    d = device(hub, "ho")
    assert d.kpis["p95_latency_ms"] == 2.0 and d.kpis_seq == 10


def test_seq_beyond_64_bits_and_ts_before_1970_are_refused(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    now = time.time()
    bridge = feed(hub, [tel("big", 1, now, 2**64), tel("neg", 1, -5.0, 0)])
    assert bridge.counters["rejected"] == 2 and bridge.counters["stored"] == 0
    assert bridge.counters["db_errors"] == 0
    with hub.db.session() as s:
        assert s.query(TelemetryRaw).filter(TelemetryRaw.device_id.in_(["big", "neg"])).count() == 0


def test_the_rule_a_jump_needs_a_later_clock() -> None:
    last = Report("telemetry", "A", 10, 100.0)
    assert newer(Report("telemetry", "A", 10 + MAX_SEQ_STEP, 50.0), last, "A", True)
    assert not newer(Report("telemetry", "A", 11 + MAX_SEQ_STEP, 99.0), last, "A", True)
    assert newer(Report("telemetry", "A", 11 + MAX_SEQ_STEP, 101.0), last, "A", True)
    jumped = Report("telemetry", "A", 2**62, 100.0)
    assert newer(Report("telemetry", "A", 11, 100.5), jumped, "A", True)
    assert not newer(Report("telemetry", "A", 11, 99.5), jumped, "A", True)
