"""The bridge's writer: parse, de-duplicate and store batches of raw MQTT messages.

Used in the hub process (a thread of :class:`cloud.hub.ingest.bridge.MqttBridge`) or in a
process of its own (:mod:`cloud.hub.ingest.writer_process`). A bad message is logged and counted,
never raised; a failing batch is retried message by message so one poisoned row loses
nothing else.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from cloud.hub.config import HubConfig
from cloud.hub.ingest import device_reports, telemetry_store
from cloud.hub.ingest.telemetry_fields import TelemetryIn, parse_telemetry
from cloud.hub.storage import Database
from edge.contract import (
    EVENTS,
    STATUS,
    TELEMETRY,
    Event,
    Status,
    Telemetry,
    decode_json,
    parse_topic,
)
from edge.errors import ContractError

log = logging.getLogger("cloud.hub.ingest.bridge")
DEDUP_WINDOW = 512

Parsed = Status | Telemetry | Event
Ingested = Status | TelemetryIn | Event
KIND_NAMES = {Status: "status", TelemetryIn: "telemetry", Event: "event"}


class SeenWindow:
    """The last ``DEDUP_WINDOW`` sequence numbers of one device stream: O(1) membership
    (a set) with FIFO eviction (a deque), since every message is checked."""

    __slots__ = ("_order", "_set")

    def __init__(self) -> None:
        self._order: deque[int] = deque()
        self._set: set[int] = set()

    def check(self, seq: int) -> bool:
        """True when ``seq`` was seen; otherwise remember it."""
        if seq in self._set:
            return True
        self._set.add(seq)
        self._order.append(seq)
        if len(self._order) > DEDUP_WINDOW:
            self._set.discard(self._order.popleft())
        return False


def parse_message(topic_name: str, payload: bytes) -> Parsed:
    """Topic + payload -> a contract type; ContractError for anything malformed."""
    device, kind = parse_topic(topic_name)
    obj = decode_json(payload)
    msg: Parsed
    if kind == STATUS:
        msg = Status.parse(obj)
    elif kind == TELEMETRY:
        msg = Telemetry.parse(obj)
    elif kind == EVENTS:
        msg = Event.parse(obj)
    else:
        raise ContractError(f"the hub does not consume {kind!r} messages")
    if msg.device != device:
        raise ContractError(f"payload device {msg.device!r} differs from topic device {device!r}")
    return msg


def ingest_message(topic_name: str, payload: bytes) -> Ingested:
    """Like ``parse_message``, with the hub's lighter telemetry parse (``parse_telemetry``:
    only the fields the hub needs are checked; the payload text is kept to be stored)."""
    device, kind = parse_topic(topic_name)
    if kind == TELEMETRY:
        return parse_telemetry(device, payload)
    msg = parse_message(topic_name, payload)
    assert not isinstance(msg, Telemetry)
    return msg


class BatchWriter:
    """Parses, de-duplicates (per device, boot and kind, by ``seq``) and stores batches."""

    def __init__(self, config: HubConfig, database: Database) -> None:
        self.config = config
        self.db = database
        self.counters: Counter[str] = Counter()
        self._seen: dict[tuple[str, str | None, str], SeenWindow] = {}

    def close(self) -> None:
        """Nothing to release (the writer process has a child to stop)."""

    def _duplicate(self, msg: Ingested, kind: str) -> bool:
        key = (msg.device, msg.boot, kind)
        seen = self._seen.get(key)
        if seen is None:
            seen = self._seen[key] = SeenWindow()
        return seen.check(msg.seq)

    def flush(self, raw: list[tuple[str, bytes]]) -> Counter[str]:
        """Parse, de-duplicate and store one batch; returns the counters it changed."""
        before = self.counters.copy()
        parsed: list[Ingested] = []
        for topic_name, payload in raw:
            if not payload and topic_name.endswith("/" + STATUS):
                self.counters["cleared"] += 1  # a retained status being cleared, not data
                continue
            try:
                msg, clamped = device_reports.check_clock(
                    ingest_message(topic_name, payload), time.time()
                )
                if clamped:  # a device clock far ahead: stored at arrival time instead
                    self.counters["clock_clamped"] += 1
            except ContractError as exc:
                self.counters["rejected"] += 1
                log.warning("dropped message on %s: %s", topic_name[:200], exc)
                continue
            except Exception:
                self.counters["rejected"] += 1
                log.exception("unexpected error parsing a message on %s", topic_name[:200])
                continue
            kind = KIND_NAMES[type(msg)]
            if kind != "status" and self._duplicate(msg, kind):
                self.counters["duplicate"] += 1
                continue
            parsed.append(msg)
        if parsed:
            # by device (a stable sort keeps each device's order): hub processes writing
            # overlapping devices then take their row locks in one order, never deadlocking
            parsed.sort(key=lambda m: m.device)
            self._store_batch(parsed)
        return self.counters - before

    def _store_batch(self, parsed: list[Ingested]) -> None:
        try:
            self._store(parsed)
            self.counters["stored"] += len(parsed)
            for msg in parsed:
                self.counters[f"stored_{KIND_NAMES[type(msg)]}"] += 1
        except (SQLAlchemyError, ValueError, TypeError):
            log.warning("batch of %d failed; storing one by one", len(parsed), exc_info=True)
            for msg in parsed:
                try:
                    self._store([msg])
                    self.counters["stored"] += 1
                    self.counters[f"stored_{KIND_NAMES[type(msg)]}"] += 1
                except Exception:
                    self.counters["db_errors"] += 1
                    log.exception("could not store a %s from %s", KIND_NAMES[type(msg)], msg.device)

    def _store(self, msgs: list[Ingested]) -> None:
        for attempt in (1, 2):
            try:
                with self.db.session() as s:
                    now = time.time()
                    telemetry = [m for m in msgs if isinstance(m, TelemetryIn)]
                    # every device row of the batch in one SELECT: ensure_device's s.get
                    # then finds them in the session instead of one query per device
                    rows = device_reports.load_devices(
                        s, {m.device for m in msgs if not isinstance(m, TelemetryIn)}
                    )
                    for m in msgs:
                        if isinstance(m, Status):
                            device_reports.apply_status(s, m, now)
                        elif isinstance(m, Event):
                            device_reports.ensure_device(s, m.device, now)
                            s.add(device_reports.event_row(m))
                    s.flush()  # telemetry below reads device rows with Core statements
                    telemetry_store.write_batch(
                        s, telemetry, self.config.stale_intervals, self.config.offline_after_s
                    )
                    del rows
                return
            except IntegrityError:  # two workers created the same new device at once
                if attempt == 2:
                    raise
