"""Telemetry batches on SQLite: minute aggregates merge across batches, late messages land
in their own minute, device KPIs keep the newest sample, duplicates are dropped; silent
devices go offline after their staleness window and come back when they send."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from cloud.hub.app import create_app
from cloud.hub.config import HubConfig
from cloud.hub.ingest import MqttBridge
from cloud.hub.ingest.batch_writer import DEDUP_WINDOW, SeenWindow, ingest_message, parse_message
from cloud.hub.ingest.telemetry_fields import Sample, TelemetryIn, parse_telemetry
from cloud.hub.ingest.telemetry_store import mark_stale_offline, staleness_window, write_batch
from cloud.hub.storage import Device, TelemetryMinute, TelemetryRaw
from edge.contract import Telemetry
from edge.errors import ConfigError, ContractError
from tests.cloud.hub import helpers

MINUTE = 1_800_000_000 - 1_800_000_000 % 60  # a minute boundary


def tel(dev: str, seq: int, ts: float, **metrics: Any) -> Telemetry:
    msg = parse_message(*helpers.telemetry(dev, seq, ts=ts, **metrics))
    assert isinstance(msg, Telemetry)
    return msg


def minutes(hub: Any, dev: str) -> dict[int, TelemetryMinute]:
    with hub.db.session() as s:
        return {m.minute: m for m in s.query(TelemetryMinute).filter_by(device_id=dev)}


def test_minute_aggregates_merge_across_batches(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    with hub.db.session() as s:
        write_batch(s, [tel("d1", 1, MINUTE + 1, latency_ms={"p50": 1.0, "p95": 2.0}),
                        tel("d1", 2, MINUTE + 2, latency_ms={"p50": 3.0, "p95": 7.0})])  # fmt: skip
    with hub.db.session() as s:
        write_batch(s, [tel("d1", 3, MINUTE + 3, latency_ms={"p50": 5.0, "p95": 4.0},
                            inferences=10, confidence_mean=None)])  # fmt: skip
    m = minutes(hub, "d1")[MINUTE]
    assert m.samples == 3 and m.inferences == 50 + 50 + 10 and m.errors == 3
    assert m.latency_p95 == 7.0  # maximum over the minute
    assert m.latency_p50 == pytest.approx(3.0)  # mean weighted by samples
    assert m.confidence == pytest.approx(0.9)  # a missing value does not dilute the mean
    assert m.drift == pytest.approx(0.05)  # max(input_psi, output_psi)


def test_late_telemetry_lands_in_its_minute_and_keeps_newest_kpis(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    with hub.db.session() as s:
        write_batch(s, [tel("d2", 10, MINUTE + 70, latency_ms={"p95": 5.0})])
    with hub.db.session() as s:  # replayed from the outbox, one minute older
        write_batch(s, [tel("d2", 9, MINUTE + 10, latency_ms={"p95": 99.0})])
    m = minutes(hub, "d2")
    assert set(m) == {MINUTE, MINUTE + 60}
    assert m[MINUTE].latency_p95 == 99.0 and m[MINUTE + 60].latency_p95 == 5.0
    with hub.db.session() as s:
        dev = s.get(Device, "d2")
        assert dev is not None and dev.kpis_ts == MINUTE + 70
        assert dev.kpis["p95_latency_ms"] == 5.0  # the late sample did not overwrite it
        assert dev.last_seen is not None and dev.enrolled is False and dev.tags == []
        assert s.query(TelemetryRaw).filter_by(device_id="d2").count() == 2


def test_one_batch_with_many_devices_and_malformed_metrics(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    batch = [tel(f"m{i}", 1, MINUTE + i) for i in range(30)]
    batch.append(tel("m0", 2, MINUTE + 40, latency_ms="fast", inferences=-3, errors={"x": "y"}))
    with hub.db.session() as s:
        assert write_batch(s, batch) == 31
        assert write_batch(s, []) == 0
    with hub.db.session() as s:
        assert s.query(Device).count() == 30
        m0 = s.get(Device, "m0")
        assert m0 is not None and m0.kpis["p95_latency_ms"] is None  # newest, malformed
    m = minutes(hub, "m0")[MINUTE]
    assert m.samples == 2 and m.inferences == 50 and m.latency_p95 == 2.0


def test_dedupe_window_and_cleared_retained_status(app: Any) -> None:
    w = SeenWindow()
    assert not w.check(1) and w.check(1)
    for seq in range(2, DEDUP_WINDOW + 2):
        assert not w.check(seq)
    assert not w.check(1)  # evicted: older than the window
    hub = app.extensions["edgekit_hub"]
    cfg = HubConfig(**{**hub.config.__dict__, "broker_url": "mqtt://127.0.0.1:1"})
    bridge = MqttBridge(cfg, hub.db)
    t, p = helpers.telemetry("d3", 5)
    other_boot = json.dumps({**json.loads(p), "boot": "boot2"}).encode()
    bridge.flush([(t, p), (t, p), (t, other_boot), ("edgekit/v1/d3/status", b"")])
    assert bridge.counters["duplicate"] == 1 and bridge.counters["cleared"] == 1
    assert bridge.counters["rejected"] == 0 and bridge.counters["stored_telemetry"] == 2


def _online(hub: Any, dev: str) -> bool:
    with hub.db.session() as s:
        d = s.get(Device, dev)
        assert d is not None
        return bool(d.online)


def _feed(hub: Any, *messages: tuple[str, bytes]) -> None:
    cfg = HubConfig(**{**hub.config.__dict__, "broker_url": "mqtt://127.0.0.1:1"})
    MqttBridge(cfg, hub.db).flush(list(messages))


def test_silent_devices_go_offline_and_come_back_when_they_send(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    _feed(hub, helpers.status("quiet"), helpers.status("talky"), helpers.status("nokpi"))
    _feed(hub, helpers.telemetry("quiet", 2), helpers.telemetry("talky", 2))  # interval_s 10
    now = time.time()
    with hub.db.session() as s:
        assert mark_stale_offline(s, now + 29, 3.0, 60.0) == []  # within 3 x 10 s
        s.get(Device, "talky").last_seen = now + 25
    with hub.db.session() as s:
        assert sorted(mark_stale_offline(s, now + 31, 3.0, 60.0)) == ["quiet"]
    with hub.db.session() as s:  # no telemetry interval known: offline_after_s
        assert sorted(mark_stale_offline(s, now + 61, 3.0, 60.0)) == ["nokpi", "talky"]
    assert not _online(hub, "quiet")
    with hub.db.session() as s:
        s.get(Device, "quiet").last_seen = now - 100
    # an outbox replay of samples taken before it went quiet is history, not life
    _feed(hub, helpers.telemetry("quiet", 3, ts=now - 200))
    assert not _online(hub, "quiet")
    with hub.db.session() as s:
        s.get(Device, "quiet").last_seen = now - 100
    _feed(hub, helpers.telemetry("quiet", 4))  # it sends again: online
    assert _online(hub, "quiet")
    # a fresh will is not undone by telemetry that follows it
    _feed(hub, helpers.status("quiet", seq=5, state="offline"), helpers.telemetry("quiet", 6))
    assert not _online(hub, "quiet")


def test_a_device_swept_offline_comes_back_while_it_keeps_reporting(app: Any) -> None:
    """Its first report after the gap spans the gap (a long window: not back yet); the
    reports after it must still bring it back, so they may not move ``last_seen`` on."""
    hub = app.extensions["edgekit_hub"]
    _feed(hub, helpers.status("late"), helpers.telemetry("late", 2))
    now = time.time()
    with hub.db.session() as s:
        assert mark_stale_offline(s, now + 31, 3.0, 60.0) == ["late"]
        s.get(Device, "late").last_seen = now - 40
    _feed(hub, helpers.telemetry("late", 3, interval_s=300))  # window 900 s: 40 s is not silence
    assert not _online(hub, "late")
    _feed(hub, helpers.telemetry("late", 4))  # window 30 s, silent for 40 s before: back
    assert _online(hub, "late")


def test_a_device_first_heard_of_through_telemetry_is_online_if_it_is_fresh(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    now = time.time()
    _feed(hub, helpers.telemetry("tel-first", 1), helpers.telemetry("tel-old", 1, ts=now - 600))
    assert _online(hub, "tel-first")  # it sends, so it is up (no status seen yet)
    assert not _online(hub, "tel-old")  # a replay of samples older than its window
    _feed(hub, helpers.telemetry("tel-old", 2))  # ... and its next fresh sample: online
    assert _online(hub, "tel-old")
    with hub.db.session() as s:
        d = s.get(Device, "tel-first")
        assert d is not None and d.enrolled is False  # still marked unenrolled


def test_staleness_sweep_runs_in_the_background(tmp_path: Any, keys: Any) -> None:
    cfg = HubConfig(data_dir=tmp_path / "hub", trusted_key=keys[1], offline_after_s=0.4,
                    tick_interval_s=0.1)  # fmt: skip
    app = create_app(cfg)
    hub = app.extensions["edgekit_hub"]
    try:
        _feed(hub, helpers.status("cut"))
        assert _online(hub, "cut")
        deadline = time.monotonic() + 10
        while _online(hub, "cut") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _online(hub, "cut")
    finally:
        hub.stop()
    with pytest.raises(ConfigError, match="offline_after_s"):
        HubConfig(offline_after_s=0)


def test_staleness_window() -> None:
    assert staleness_window(10, 3.0, 60.0) == 30.0
    for bad in (None, "10", 0, -5, True, float("nan")):
        assert staleness_window(bad, 3.0, 60.0) == 60.0


def test_raw_rows_keep_the_payload_as_received(app: Any) -> None:
    """The bridge stores the payload text itself (no re-encoding); a payload that is JSON
    but not UTF-8 (UTF-16 is valid JSON) is re-encoded instead of being lost."""
    hub = app.extensions["edgekit_hub"]
    t, p = helpers.telemetry("rawdev", 1, ts=MINUTE + 5)
    utf16 = json.dumps({**json.loads(p), "seq": 2}).encode("utf-16")
    bridge = _bridge(hub)
    bridge.flush([(t, p), (t, utf16)])
    assert bridge.counters["stored_telemetry"] == 2 and bridge.counters["rejected"] == 0
    with hub.db.session() as s:
        rows = s.query(TelemetryRaw).filter_by(device_id="rawdev").order_by(TelemetryRaw.seq)
        first, second = rows.all()
    assert first.metrics == json.loads(p) and second.metrics["seq"] == 2
    assert first.latency_p95 == 2.0 and first.inferences == 50 and first.errors == 1
    assert first.drift == pytest.approx(0.05) and first.accuracy == 0.95


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"schema": "edgekit.telemetry/9"}, "schema"),
        ({"device": "someone-else"}, "differs from topic"),
        ({"ts": True}, "'ts' has wrong type bool"),
        ({"ts": "now"}, "'ts' has wrong type str"),
        ({"seq": 1.5}, "'seq' has wrong type float"),
        ({"boot": 7}, "'boot' has wrong type int"),
        ({"model": "digits"}, "'model' must be an object"),
        ({"model": {"name": "digits", "version": "2"}}, "'version' has wrong type str"),
    ],
)
def test_light_telemetry_parse_rejects_what_the_contract_rejects(
    change: dict[str, Any], error: str
) -> None:
    t, p = helpers.telemetry("lp", 1)
    bad = json.dumps({**json.loads(p), **change}).encode()
    with pytest.raises(ContractError, match=error):
        parse_telemetry("lp", bad)
    with pytest.raises(ContractError):
        ingest_message(t, bad)


def test_light_telemetry_parse_reads_the_envelope_and_tolerates_odd_metrics() -> None:
    t, p = helpers.telemetry("lp2", 7, version=3, ts=MINUTE + 1.5, latency_ms=[1, 2])
    msg = ingest_message(t, p)
    assert isinstance(msg, TelemetryIn)
    assert (msg.device, msg.seq, msg.ts, msg.boot) == ("lp2", 7, MINUTE + 1.5, "boot1")
    assert msg.model is not None and msg.model.version == 3 and msg.raw == p.decode()
    s = Sample.of(msg.metrics)
    assert s.latency_p95 is None and s.inferences == 50  # a malformed metric is only None
    assert Sample.of({"inferences": 10**400, "error_rate": float("nan")}).inferences == 0
    assert Sample.of({"drift": {"input_psi": float("inf"), "output_psi": 0.3}}).drift == 0.3


def test_writer_batches_a_burst_and_stores_it_all(app: Any) -> None:
    """The writer thread, fed the way paho's thread feeds it: one transaction per burst."""
    hub = app.extensions["edgekit_hub"]
    bridge = _bridge(hub)
    bridge._writer.start()
    try:
        for seq in range(1, 301):
            bridge._on_message(None, None, _Msg(*helpers.telemetry(f"burst{seq % 7}", seq)))  # type: ignore[arg-type]
        deadline = time.monotonic() + 20
        while bridge.counters["stored_telemetry"] < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        bridge._stop.set()
        bridge._writer.join(10)
    assert bridge.counters["stored_telemetry"] == 300 and bridge.counters["received"] == 300
    with hub.db.session() as s:
        assert s.query(TelemetryRaw).filter(TelemetryRaw.device_id.like("burst%")).count() == 300


class _Msg:
    qos, mid = 0, 0  # QoS 0: nothing to acknowledge

    def __init__(self, topic: str, payload: bytes) -> None:
        self.topic, self.payload = topic, payload


def _bridge(hub: Any) -> MqttBridge:
    cfg = HubConfig(**{**hub.config.__dict__, "broker_url": "mqtt://127.0.0.1:1"})
    return MqttBridge(cfg, hub.db)
