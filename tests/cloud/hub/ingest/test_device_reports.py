"""The device row only moves forward in device time: a status, telemetry or will written
late (batching, outbox replay, another worker) never puts back an older model, online
state or KPIs. Messages go through the bridge's real parse-and-store path (no broker)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from cloud.hub.app import create_app
from cloud.hub.config import HubConfig
from cloud.hub.ingest import MqttBridge
from cloud.hub.ingest.device_reports import Report, newer
from cloud.hub.storage import Device, TelemetryRaw
from edge.contract import Event, ModelRef, Status, Telemetry, encode_json, topic
from tests.cloud.hub.pg_schema import throwaway_schema

Message = tuple[str, bytes]


def status(dev: str, version: int | None, ts: float, seq: int, boot: str = "A",
           state: str = "online") -> Message:  # fmt: skip
    model = ModelRef("digits", version, "litert", "int8") if version else None
    s = Status(dev, ts, seq, state, "0.1.0", model, boot, True, {"cores": 2})
    return topic(dev, "status"), encode_json(s.to_dict())


def tel(dev: str, version: int | None, ts: float, seq: int, boot: str = "A",
        p95: float = 2.0) -> Message:  # fmt: skip
    model = ModelRef("digits", version) if version else None
    metrics = {"interval_s": 10, "inferences": 5, "latency_ms": {"p95": p95}}
    return topic(dev, "telemetry"), encode_json(
        Telemetry(dev, ts, seq, model, metrics, boot).to_dict()
    )


def will(dev: str, ts: float, boot: str = "A") -> Message:
    return status(dev, None, ts, -1, boot, state="offline")


def feed(hub: Any, *batches: list[Message]) -> MqttBridge:
    cfg = HubConfig(**{**hub.config.__dict__, "broker_url": "mqtt://127.0.0.1:1"})
    bridge = MqttBridge(cfg, hub.db)
    for batch in batches:
        bridge.flush(batch)
    return bridge


def device(hub: Any, dev: str) -> Device:
    with hub.db.session() as s:
        d = s.get(Device, dev)
        assert d is not None
        return d


# --------------------------------------------------------------------------- the rule


def test_same_run_same_topic_compares_seq_not_the_clock() -> None:
    last = Report("status", "A", 5, 100.0)
    assert newer(Report("status", "A", 6, 50.0), last, "A", True)  # clock stepped back
    assert not newer(Report("status", "A", 4, 200.0), last, "A", True)
    assert not newer(Report("status", "A", 5, 100.0), last, "A", True)  # the same message


def test_same_run_other_topic_compares_the_device_clock() -> None:
    last = Report("status", "A", 5, 10.0)
    assert not newer(Report("telemetry", "A", 99, 9.0), last, "A", True)
    assert newer(Report("telemetry", "A", 1, 11.0), last, "A", True)
    assert not newer(Report("telemetry", "A", 1, 10.0), last, "A", True)  # tie: status wins
    assert newer(Report("status", "A", 1, 10.0), Report("telemetry", "A", 3, 10.0), "A", True)


def test_across_runs_a_status_wins_and_unannounced_telemetry_does_not() -> None:
    last = Report("status", "A", 5, 100.0)
    assert newer(Report("status", "B", 0, 90.0), last, "A", True)  # restarted, clock behind
    assert not newer(Report("telemetry", "B", 0, 200.0), last, "A", True)  # status follows
    # KPIs still from run A while run B is announced: B's telemetry wins regardless of clock
    assert newer(Report("telemetry", "B", 0, 90.0), Report("telemetry", "A", 9, 99.0), "B", True)
    # a late message of run A after run A's own newer one still compares by seq
    assert newer(Report("telemetry", "A", 10, 99.0), Report("telemetry", "A", 9, 98.0), "B", True)
    assert not newer(
        Report("telemetry", "A", 8, 97.0), Report("telemetry", "A", 9, 98.0), "B", True
    )
    # before any status, telemetry of another run wins only when newer
    assert newer(Report("telemetry", "B", 0, 101.0), Report("telemetry", "A", 9, 100.0), "A", False)
    assert not newer(
        Report("telemetry", "B", 0, 99.0), Report("telemetry", "A", 9, 100.0), "A", False
    )
    assert newer(Report("telemetry", "A", 0, 1.0), None, None, False)


# --------------------------------------------------------------------------- the demo bug


@pytest.mark.parametrize(
    "batches",
    [
        "status|telemetry",
        "telemetry|status",
        "status,telemetry",
        "telemetry,status",
    ],
)
def test_rolled_back_device_stays_on_v1_whatever_order_telemetry_is_written(
    app: Any, batches: str
) -> None:
    """Rolled back v2 -> v1 (retained status says v1 at ts=10); telemetry produced at ts=9
    while v2 still ran is written later (or earlier, or in the same batch)."""
    hub = app.extensions["edgekit_hub"]
    feed(hub, [status("rb", 2, 5.0, 1)])  # it ran v2
    msgs = {"status": status("rb", 1, 10.0, 2), "telemetry": tel("rb", 2, 9.0, 7)}
    feed(hub, *([msgs[k] for k in group.split(",")] for group in batches.split("|")))
    d = device(hub, "rb")
    assert (d.model_name, d.model_version, d.model_runtime) == ("digits", 1, "litert")
    assert d.online and d.model_ts == 10.0 and d.model_src == "status"
    assert d.kpis["model"] == {"name": "digits", "version": 2}  # KPIs measured on v2, kept
    assert d.kpis_ts == 9.0


def test_newer_telemetry_reports_the_model_and_keeps_runtime(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    feed(hub, [status("nt", 1, 10.0, 1)], [tel("nt", 1, 11.0, 1)])
    d = device(hub, "nt")
    assert (d.model_version, d.model_runtime, d.model_src) == (1, "litert", "telemetry")
    feed(hub, [tel("nt", 3, 12.0, 2)])  # e.g. its status was lost: telemetry is newer
    d = device(hub, "nt")
    assert (d.model_version, d.model_runtime, d.model_ts) == (3, None, 12.0)
    feed(hub, [status("nt", 2, 11.5, 2)])  # a late status, older than that telemetry
    assert device(hub, "nt").model_version == 3


def test_every_order_of_one_runs_reports_ends_on_the_newest(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    reports = [status("perm", 1, 10.0, 1), tel("perm", 2, 20.0, 1),
               status("perm", 3, 30.0, 2), tel("perm", 3, 31.0, 2, p95=9.0),
               tel("perm", 2, 15.0, 0, p95=1.0)]  # fmt: skip
    for n, order in enumerate(itertools.permutations(range(len(reports)))):
        if n % 7:  # a spread of the 120 orders keeps this quick
            continue
        dev = f"perm{n}"
        msgs = [(t.replace("perm", dev), p.replace(b'"perm"', f'"{dev}"'.encode()))
                for t, p in (reports[i] for i in order)]  # fmt: skip
        feed(hub, msgs[:2], msgs[2:3], msgs[3:])
        d = device(hub, dev)
        assert (d.model_version, d.model_ts, d.kpis_ts) == (3, 31.0, 31.0), order
        assert d.kpis["p95_latency_ms"] == 9.0 and d.kpis_seq == 2


def test_same_run_status_with_lower_seq_is_ignored(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    feed(hub, [status("sq", 2, 50.0, 4)], [status("sq", 1, 60.0, 3)])  # clock later, seq not
    assert device(hub, "sq").model_version == 2


# --------------------------------------------------------------------------- across runs


def test_a_restarted_device_wins_even_with_its_clock_behind(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    feed(hub, [status("rs", 2, 100.0, 3, boot="A"), tel("rs", 2, 101.0, 8, boot="A")])
    feed(hub, [status("rs", 1, 95.0, 0, boot="B")])  # restarted on v1, clock 6 s behind
    d = device(hub, "rs")
    assert (d.model_version, d.boot, d.model_ts) == (1, "B", 95.0)
    # run A's outbox replays telemetry it never sent (newer clock): neither model nor KPIs
    feed(hub, [tel("rs", 2, 102.0, 9, boot="A", p95=50.0)])
    d = device(hub, "rs")
    assert d.model_version == 1 and d.kpis["p95_latency_ms"] == 50.0 and d.kpis_boot == "A"
    # ... KPIs: run A's seq 9 follows its seq 8, so it is newer than what they held; run B's
    # first telemetry then wins although its clock is behind
    feed(hub, [tel("rs", 1, 96.0, 0, boot="B", p95=3.0)])
    d = device(hub, "rs")
    assert d.model_version == 1 and d.kpis["p95_latency_ms"] == 3.0 and d.kpis_ts == 96.0
    feed(hub, [tel("rs", 2, 103.0, 10, boot="A", p95=70.0)])  # A is old now
    d = device(hub, "rs")
    assert d.model_version == 1 and d.kpis["p95_latency_ms"] == 3.0


def test_telemetry_of_a_new_run_waits_for_its_status(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    feed(hub, [status("nr", 1, 100.0, 3, boot="A")], [tel("nr", 2, 200.0, 0, boot="B")])
    assert device(hub, "nr").model_version == 1  # B not announced yet
    feed(hub, [status("nr", 2, 199.0, 0, boot="B")])
    assert device(hub, "nr").model_version == 2


def test_telemetry_only_device_follows_the_clock_across_runs(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    feed(hub, [tel("to", 1, 100.0, 5, boot="A")], [tel("to", 2, 90.0, 0, boot="B")])
    d = device(hub, "to")
    assert (d.model_version, d.boot, d.seq) == (1, "A", None)
    feed(hub, [tel("to", 2, 110.0, 1, boot="B")])
    assert (device(hub, "to").model_version, device(hub, "to").boot) == (2, "B")


# --------------------------------------------------------------------------- will, events


def test_will_of_the_current_run_applies_though_its_clock_is_old(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    feed(hub, [status("wl", 1, 100.0, 0)], [status("wl", 2, 150.0, 1)])
    feed(hub, [will("wl", 99.0)])  # set when the agent connected
    d = device(hub, "wl")
    assert not d.online and d.model_version == 2  # the will keeps the model
    feed(hub, [status("wl", 2, 160.0, 2)])  # the same run reconnects
    assert device(hub, "wl").online


def test_an_old_runs_will_after_a_restart_is_ignored(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    feed(hub, [status("ow", 1, 100.0, 0, boot="A")], [status("ow", 1, 200.0, 0, boot="B")])
    feed(hub, [will("ow", 99.0, boot="A")])
    assert device(hub, "ow").online
    feed(hub, [will("ow", 199.0, boot="B")])
    assert not device(hub, "ow").online


def test_events_never_change_the_model(app: Any) -> None:
    hub = app.extensions["edgekit_hub"]
    feed(hub, [status("ev", 1, 10.0, 0)])
    e = Event("ev", 20.0, 3, "deploy", "committed", "committed", "r1", "c1", 2, {}, "A")
    bridge = feed(hub, [(topic("ev", "events"), encode_json(e.to_dict()))])
    assert bridge.counters["stored_event"] == 1
    d = device(hub, "ev")
    assert (d.model_version, d.model_ts) == (1, 10.0)


@pytest.mark.integration
def test_device_time_ordering_on_postgres(tmp_path: Any, keys: Any) -> None:
    """The same rules through the driver-level bulk statements of PostgreSQL (psycopg:
    %s placeholders, JSON as text, IS NOT DISTINCT FROM)."""
    with throwaway_schema("hubdt") as pg_url:
        _ordering_on(pg_url, tmp_path, keys)


def _ordering_on(pg_url: str, tmp_path: Any, keys: Any) -> None:
    app = create_app(HubConfig(data_dir=tmp_path, db_url=pg_url, trusted_key=keys[1],
                               background=False))  # fmt: skip
    hub = app.extensions["edgekit_hub"]
    try:
        feed(hub, [status("pg", 2, 5.0, 1)], [status("pg", 1, 10.0, 2), tel("pg", 2, 9.0, 7)])
        feed(hub, [tel("pg", 1, 11.0, 8, p95=4.0), tel("pg", 1, 10.5, 6)])  # 6: late, older
        d = device(hub, "pg")
        assert (d.model_version, d.model_src, d.model_ts, d.model_runtime) == (
            1, "telemetry", 11.0, "litert")  # fmt: skip
        assert d.kpis["p95_latency_ms"] == 4.0 and d.kpis_ts == 11.0 and d.online
        with hub.db.session() as s:
            assert s.query(TelemetryRaw).filter_by(device_id="pg").count() == 3
            raw = s.query(TelemetryRaw).filter_by(device_id="pg", seq=8).one()
            assert raw.metrics["latency_ms"] == {"p95": 4.0} and raw.metrics["device"] == "pg"
    finally:
        hub.stop()
        hub.db.dispose()
