"""``edgekit telemetry tail``: a small third-party-style consumer of the public MQTT topics.

It subscribes to ``status``, ``telemetry`` and ``events`` of every device (or one) and shows a
live table: online, model, runtime, inferences/s, p95 latency, error rate, drift, accuracy,
last seen. ``--json`` prints one JSON line per message instead. Malformed payloads (not JSON,
wrong schema, topic/device mismatch) are counted and shown, never fatal; duplicate telemetry
(same device, boot and seq, as an outbox re-send produces) is counted and skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from edge import contract as c
from edge.errors import ContractError


@dataclass
class DeviceRow:
    device: str
    online: bool | None = None
    model: str = "-"
    runtime: str = "-"
    rate: float | None = None
    p95: float | None = None
    error_rate: float | None = None
    drift: float | None = None
    drift_alert: bool = False
    accuracy: float | None = None
    last_seen: float = 0.0
    last_event: str = ""
    seen_seqs: set[tuple[str | None, int]] = field(default_factory=set)


class FleetView:
    """Folds messages into one row per device; thread-safe, pure (no I/O)."""

    def __init__(self, clock: Any = time.time) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.rows: dict[str, DeviceRow] = {}
        self.malformed = 0
        self.duplicates = 0
        self.last_problem = ""

    def ingest(self, topic: str, payload: bytes) -> dict[str, Any]:
        """Fold one message in; returns a JSON-able record of it (for ``--json``)."""
        try:
            device, kind = c.parse_topic(topic)
            obj = c.decode_json(payload)
            record = self._apply(device, kind, obj)
        except ContractError as exc:
            with self._lock:
                self.malformed += 1
                self.last_problem = f"{topic}: {exc}"
            return {"topic": topic, "error": str(exc)}
        return record

    def _apply(self, device: str, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        now = self._clock()
        if kind == c.STATUS:
            status = c.Status.parse(obj)
            self._check_device(device, status.device)
            with self._lock:
                row = self._row(device, now)
                row.online = status.state == "online"
                if status.model is not None:
                    row.model = f"{status.model.name}:{status.model.version}"
                    row.runtime = _runtime(status.model)
        elif kind == c.TELEMETRY:
            tel = c.Telemetry.parse(obj)
            self._check_device(device, tel.device)
            with self._lock:
                row = self._row(device, now)
                key = (tel.boot, tel.seq)
                if key in row.seen_seqs:
                    self.duplicates += 1
                    return {"topic": f"{c.TOPIC_ROOT}/{device}/{kind}", "duplicate": True, **obj}
                row.seen_seqs.add(key)
                if len(row.seen_seqs) > 10_000:
                    row.seen_seqs.clear()
                _fold_metrics(row, tel)
        elif kind == c.EVENTS:
            ev = c.Event.parse(obj)
            self._check_device(device, ev.device)
            with self._lock:
                row = self._row(device, now)
                row.last_event = f"{ev.kind}:{ev.step}" if ev.step else ev.kind
        else:
            raise ContractError(f"unexpected topic kind {kind!r}")
        return {"topic": f"{c.TOPIC_ROOT}/{device}/{kind}", **obj}

    @staticmethod
    def _check_device(topic_device: str, payload_device: str) -> None:
        if topic_device != payload_device:
            raise ContractError(f"payload device {payload_device!r} != topic device")

    def _row(self, device: str, now: float) -> DeviceRow:
        row = self.rows.setdefault(device, DeviceRow(device))
        row.last_seen = now
        return row

    def render(self) -> str:
        """The table as text, devices sorted by id."""
        now = self._clock()
        header = ("DEVICE", "ONLINE", "MODEL", "RUNTIME", "INF/S", "P95 MS", "ERR %", "DRIFT",
                  "ACC", "SEEN", "LAST EVENT")  # fmt: skip
        with self._lock:
            lines = [header] + [
                (
                    r.device,
                    {True: "yes", False: "NO", None: "?"}[r.online],
                    r.model,
                    r.runtime,
                    _fmt(r.rate, "{:.1f}"),
                    _fmt(r.p95, "{:.2f}"),
                    _fmt(None if r.error_rate is None else 100 * r.error_rate, "{:.1f}"),
                    _fmt(r.drift, "{:.3f}") + ("!" if r.drift_alert else ""),
                    _fmt(r.accuracy, "{:.3f}"),
                    f"{max(0.0, now - r.last_seen):.0f}s ago",
                    r.last_event or "-",
                )
                for r in sorted(self.rows.values(), key=lambda r: r.device)
            ]
            footer = f"{len(self.rows)} device(s); malformed: {self.malformed}"
            footer += f"; duplicates: {self.duplicates}"
            if self.last_problem:
                footer += f"\nlast malformed: {self.last_problem[:160]}"
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        text = "\n".join(
            "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)) for line in lines
        )
        return text + "\n" + footer


def _runtime(model: c.ModelRef) -> str:
    if not model.runtime:
        return "-"
    return f"{model.runtime}-{model.precision}" if model.precision else model.runtime


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else spec.format(value)


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _fold_metrics(row: DeviceRow, tel: c.Telemetry) -> None:
    m = tel.metrics
    row.online = True if row.online is None else row.online
    if tel.model is not None:
        row.model = f"{tel.model.name}:{tel.model.version}"
        row.runtime = _runtime(tel.model)
    row.rate = _num(m.get("throughput_per_s"))
    lat = m.get("latency_ms")
    row.p95 = _num(lat.get("p95")) if isinstance(lat, dict) else None
    row.error_rate = _num(m.get("error_rate"))
    drift = m.get("drift")
    if isinstance(drift, dict):
        scores = [
            v
            for v in (_num(drift.get("input_psi")), _num(drift.get("output_psi")))
            if v is not None
        ]
        row.drift = max(scores) if scores else None
        row.drift_alert = drift.get("alert") is True
    acc = m.get("accuracy")
    row.accuracy = _num(acc.get("value")) if isinstance(acc, dict) else None


def run_tail(
    transport: Any,
    view: FleetView,
    *,
    device: str = "+",
    as_json: bool = False,
    once_after: float | None = None,
    refresh_s: float = 1.0,
    out: TextIO = sys.stdout,
) -> int:
    """Subscribe, then print until ``once_after`` seconds passed (or forever)."""
    print_lock = threading.Lock()

    def on_message(topic: str, payload: bytes) -> None:
        record = view.ingest(topic, payload)
        if as_json:
            with print_lock:
                out.write(json.dumps(record, default=str) + "\n")
                out.flush()

    for kind in (c.STATUS, c.TELEMETRY, c.EVENTS):
        transport.subscribe(c.topic_filter(kind, device), on_message, qos=1)
    transport.connect()
    deadline = None if once_after is None else time.monotonic() + once_after
    if not transport.wait_connected(min(5.0, once_after or 5.0)):
        print("warning: broker not reachable yet; still trying", file=sys.stderr)
    live = not as_json and once_after is None
    last = ""
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(
                refresh_s if deadline is None else min(refresh_s, deadline - time.monotonic())
            )
            if live:
                table = view.render()
                if table != last:
                    clear = "\x1b[H\x1b[J" if out.isatty() else ""
                    with print_lock:
                        out.write(clear + table + "\n")
                        out.flush()
                    last = table
    except KeyboardInterrupt:
        pass
    finally:
        transport.close()
    if not as_json and not live:
        out.write(view.render() + "\n")
    return 0


def _handle_tail(args: argparse.Namespace) -> int:
    from edge.messaging import MqttSettings, MqttTransport

    if args.device != "+":
        c.validate_device_id(args.device)
    if args.once_after is not None and args.once_after <= 0:
        from edge.errors import ConfigError

        raise ConfigError("--once-after must be a positive number of seconds")
    settings = MqttSettings(
        url=args.broker,
        username=args.username,
        password=args.password,
        ca_file=args.ca_file,
        protocol=args.mqtt_protocol,
    )
    transport = MqttTransport(settings)
    return run_tail(
        transport, FleetView(), device=args.device, as_json=args.json, once_after=args.once_after
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("telemetry", help="watch device status and telemetry")
    sub = parser.add_subparsers(dest="telemetry_command", metavar="SUBCOMMAND", required=True)
    tail = sub.add_parser("tail", help="live table of devices (or JSON lines) from the broker")
    tail.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt:// or mqtts:// URL")
    tail.add_argument("--device", default="+", help="only this device id (default: all)")
    tail.add_argument("--json", action="store_true", help="print one JSON line per message")
    tail.add_argument(
        "--once-after", type=float, metavar="SECONDS", help="print once after SECONDS and exit"
    )
    tail.add_argument("--username")
    tail.add_argument("--password")
    tail.add_argument("--ca-file", help="CA certificate for mqtts://")
    tail.add_argument("--mqtt-protocol", choices=("3.1.1", "5"), default="3.1.1")
    tail.set_defaults(handler=_handle_tail)
