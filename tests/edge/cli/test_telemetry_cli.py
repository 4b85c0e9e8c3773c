"""``edgekit telemetry tail``: folding real payloads, surviving malformed ones, the CLI."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from edge import contract as c
from edge.cli.telemetry import FleetView, run_tail
from edge.messaging import MemoryBroker, MemoryTransport, MqttSettings, MqttTransport
from edge.serving import Monitor
from tests.edge.serving.test_monitor import LABELS, one_hot

MODEL = c.ModelRef(name="digits", version=3, runtime="onnxruntime", precision="fp32")
ROOT = Path(__file__).resolve().parents[3]


def telemetry(device: str, seq: int, boot: str = "b1") -> bytes:
    m = Monitor(LABELS)
    for i in range(10):
        m.record(2.0, one_hot(i % 3), true_label=LABELS[0])
    m.record_error("timeout")
    t = c.Telemetry(device=device, ts=time.time(), seq=seq, model=MODEL, metrics=m.snapshot(),
                    boot=boot)  # fmt: skip
    return c.encode_json(t.to_dict())


def status(device: str, state: str = "online") -> bytes:
    s = c.Status(device=device, ts=time.time(), seq=0, state=state, model=MODEL, boot="b1")
    return c.encode_json(s.to_dict())


MALFORMED: list[tuple[str, bytes]] = [
    ("edgekit/v1/cam-1/telemetry", b"not json at all"),
    ("edgekit/v1/cam-1/telemetry", b"[1, 2, 3]"),
    ("edgekit/v1/cam-1/telemetry", b'{"schema": "edgekit.telemetry/9"}'),
    ("edgekit/v1/cam-1/status", b'{"schema": "edgekit.status/1", "device": "cam-1"}'),
    ("edgekit/v1/cam-1/status", status("someone-else")),
    ("edgekit/v1/cam-1/events", b"\xff\xfe"),
    ("edgekit/v1/cam-1/telemetry", b"{" * 2_000_000),
]


def test_fleet_view_folds_status_telemetry_and_events() -> None:
    clock = [1000.0]
    view = FleetView(clock=lambda: clock[0])
    view.ingest("edgekit/v1/cam-1/status", status("cam-1"))
    view.ingest("edgekit/v1/cam-1/telemetry", telemetry("cam-1", 1))
    ev = c.Event(device="cam-1", ts=1.0, seq=2, kind="deploy", message="ok", step="committed")
    view.ingest("edgekit/v1/cam-1/events", c.encode_json(ev.to_dict()))
    view.ingest("edgekit/v1/cam-2/status", status("cam-2", "offline"))
    row = view.rows["cam-1"]
    assert row.online is True and row.model == "digits:3" and row.runtime == "onnxruntime-fp32"
    assert row.p95 == 2.0 and row.error_rate == pytest.approx(1 / 11)
    assert row.accuracy == pytest.approx(4 / 10) and row.last_event == "deploy:committed"
    assert view.rows["cam-2"].online is False
    clock[0] += 30
    table = view.render()
    assert "cam-1" in table and "cam-2" in table and "30s ago" in table and "NO" in table
    assert "malformed: 0" in table


def test_duplicates_by_boot_and_seq_are_skipped() -> None:
    view = FleetView()
    view.ingest("edgekit/v1/cam-1/telemetry", telemetry("cam-1", 5))
    rec = view.ingest("edgekit/v1/cam-1/telemetry", telemetry("cam-1", 5))
    assert rec["duplicate"] is True and view.duplicates == 1
    view.ingest("edgekit/v1/cam-1/telemetry", telemetry("cam-1", 5, boot="b2"))  # a new boot
    assert view.duplicates == 1


@pytest.mark.parametrize(("topic", "payload"), MALFORMED)
def test_malformed_payloads_are_counted_not_fatal(topic: str, payload: bytes) -> None:
    view = FleetView()
    rec = view.ingest(topic, payload)
    assert "error" in rec and view.malformed == 1
    assert "malformed: 1" in view.render()
    view.ingest("edgekit/v1/cam-1/status", status("cam-1"))
    assert view.rows["cam-1"].online is True


def test_run_tail_json_lines_over_memory_transport() -> None:
    broker = MemoryBroker()
    agent = MemoryTransport(broker, "agent")
    agent.connect()
    agent.publish("edgekit/v1/cam-1/status", status("cam-1"), retain=True)  # seen on subscribe
    out = io.StringIO()
    tail = MemoryTransport(broker, "tail")

    def feed() -> None:
        time.sleep(0.2)
        agent.publish("edgekit/v1/cam-1/telemetry", telemetry("cam-1", 1))
        agent.publish("edgekit/v1/cam-1/telemetry", b"garbage")
        agent.publish("edgekit/v1/cam-1/infer/req", b"{}")  # not subscribed: never shown

    threading.Thread(target=feed).start()
    view = FleetView()
    assert run_tail(tail, view, as_json=True, once_after=0.6, refresh_s=0.1, out=out) == 0
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["topic"] for line in lines] == [
        "edgekit/v1/cam-1/status",
        "edgekit/v1/cam-1/telemetry",
        "edgekit/v1/cam-1/telemetry",
    ]
    assert lines[1]["schema"] == c.SCHEMA_TELEMETRY and "error" in lines[2]
    assert view.malformed == 1


def test_run_tail_one_device_table() -> None:
    broker = MemoryBroker()
    agent = MemoryTransport(broker, "agent")
    agent.connect()
    agent.publish("edgekit/v1/cam-1/status", status("cam-1"), retain=True)
    agent.publish("edgekit/v1/cam-2/status", status("cam-2"), retain=True)
    out = io.StringIO()
    run_tail(MemoryTransport(broker), FleetView(), device="cam-2", once_after=0.2, out=out)
    text = out.getvalue()
    assert "cam-2" in text and "cam-1" not in text and "1 device(s)" in text


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "telemetry", "tail", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


@pytest.mark.parametrize(
    "args",
    [("--broker", "http://127.0.0.1:1883"), ("--device", "a/b"), ("--once-after", "-1")],
)
def test_cli_bad_options_are_one_line_errors(args: tuple[str, ...]) -> None:
    proc = cli(*args)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr


@pytest.mark.integration
def test_cli_against_real_mosquitto_with_malformed_payloads() -> None:
    device = f"tail-{uuid.uuid4().hex[:8]}"
    pub = MqttTransport(MqttSettings(max_payload=16 << 20))  # a misbehaving publisher
    pub.connect()
    assert pub.wait_connected(5)
    base = f"edgekit/v1/{device}"
    pub.publish_and_wait(f"{base}/status", status(device), retain=True)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "telemetry", "tail", "--device", device,
             "--json", "--once-after", "4"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        )  # fmt: skip
        time.sleep(2.0)  # interpreter start + subscribe
        sent: list[Any] = [
            (f"{base}/telemetry", telemetry(device, 1)),
            (f"{base}/telemetry", b"not json"),
            (f"{base}/events", b'{"schema": "edgekit.event/1"}'),
            (f"{base}/telemetry", b"x" * (2 << 20)),  # over the 1 MiB limit
            (f"{base}/telemetry", telemetry(device, 2)),
        ]
        for topic, payload in sent:
            assert pub.publish_and_wait(topic, payload)
        stdout, stderr = proc.communicate(timeout=30)
        assert proc.returncode == 0, stderr
        lines = [json.loads(line) for line in stdout.splitlines()]
        good = [ln for ln in lines if "error" not in ln]
        bad = [ln for ln in lines if "error" in ln]
        assert [ln.get("seq") for ln in good] == [0, 1, 2]  # status, then telemetry 1 and 2
        assert len(bad) == 2  # the oversize payload is dropped by the transport itself
    finally:
        pub.publish_and_wait(f"{base}/status", b"", retain=True)
        pub.close()
