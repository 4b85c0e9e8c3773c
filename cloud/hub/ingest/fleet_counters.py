"""Cumulative fleet counters for ``/metrics``, kept in the database (table ``fleet_counters``).

Why the database: a Prometheus counter must only go up, but the hub may run as several
processes (gunicorn workers, each with its own bridge and writer, see docs/hub.md) and
restarts. Counters held in one process's memory would look like a reset on every restart
and jump between workers from one scrape to the next. Rows are only ever incremented by
an upsert computed in the database, so concurrent writers never lose each other's counts.

Per model version, from telemetry (``add_telemetry``, in the writer's transaction that
stores the same messages, so a counted message is a stored one):

* ``inferences``, ``errors``, ``rejected``: the sums of the **interval** counts each payload
  carries (``inferences``, ``errors`` and ``rejected_inputs`` by kind). Not deltas of the
  device-reported ``inferences_total``: that resets whenever an agent restarts, and
  telling a reset from a replayed late payload (outbox, QoS 1) needs per-device state that
  every writer would share. Interval counts are additive: a device restart, a reset, a
  new boot or payloads arriving late all add up to the right total. Each payload counts
  once as far as the writer's de-duplication (device, boot, seq) goes: a restarted writer
  process may store one batch twice (docs/hub.md), and then counts it twice too.
* ``latency_bucket`` (label = the bucket's upper bound, ``+Inf`` last), ``latency_sum``
  (seconds): the devices' ``latency_histogram`` interval counts
  added up, only when the payload's bounds are the contract's ``LATENCY_BUCKETS_S``
  (others cannot be merged and are skipped, as is a malformed histogram).

Bridge counters (``add_bridge``, family ``bridge``, label = the counter's name): each hub
process adds what its bridge counted since it last did.

A payload count above ``MAX_INTERVAL_COUNT`` is taken as garbage and ignored, so one bad
device cannot push a counter past the integers a float holds exactly (2**53).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from cloud.hub.ingest.telemetry_fields import Sample, TelemetryLike
from cloud.hub.storage import FleetCounter, bulk_sql
from edge.contract import LATENCY_BUCKETS_S, LatencyBuckets
from edge.errors import ContractError

log = logging.getLogger(__name__)
TABLE = cast(Table, FleetCounter.__table__)
KEY = ("family", "model_name", "model_version", "label")
UPSERT = (
    bulk_sql.insert_sql(TABLE.name, (*KEY, "value"))
    + f" ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET value = {TABLE.name}.value + excluded.value"
)
MAX_INTERVAL_COUNT = 10**9
INF_LABEL = "+Inf"
BUCKET_LABELS = (*(repr(b) for b in LATENCY_BUCKETS_S), INF_LABEL)

Key = tuple[str, str, int, str]


def add_telemetry(db: Session, items: Iterable[tuple[TelemetryLike, Sample]]) -> None:
    """Add the counts of stored telemetry (with its parsed ``Sample``) per model version."""
    delta: dict[Key, float] = {}

    def add(key: Key, value: float) -> None:
        if value:
            delta[key] = delta.get(key, 0.0) + value

    for t, s in items:
        if t.model is None:
            continue  # nothing served: no version to count for
        name, version = t.model.name, t.model.version
        rejected = _sum_counts(t.metrics.get("rejected_inputs"))
        for family, n in (("inferences", s.inferences), ("errors", s.errors),
                          ("rejected", rejected)):  # fmt: skip
            if n <= MAX_INTERVAL_COUNT:
                add((family, name, version, ""), n)
        hist = _histogram(t)
        if hist is not None:
            for label, c in zip(BUCKET_LABELS, hist.counts, strict=True):
                add(("latency_bucket", name, version, label), c)
            add(("latency_sum", name, version, ""), hist.sum_s)
    _upsert(db, delta)


def _sum_counts(by_kind: Any) -> int:
    """The sum of a ``{kind: count}`` map's non-negative integer counts (others skipped)."""
    if not isinstance(by_kind, dict):
        return 0
    return sum(n for n in by_kind.values() if type(n) is int and 0 <= n <= MAX_INTERVAL_COUNT)


def _histogram(t: TelemetryLike) -> LatencyBuckets | None:
    try:
        hist = LatencyBuckets.parse(t.metrics.get("latency_histogram"))
    except ContractError as exc:
        log.debug("latency histogram of %s not merged: %s", t.device, exc)
        return None
    if hist is None or hist.le != LATENCY_BUCKETS_S or hist.count > MAX_INTERVAL_COUNT:
        return None
    return hist


def add_bridge(db: Session, delta: Mapping[str, int]) -> None:
    """Add one bridge's counter increments (``received``, ``stored_telemetry``, ...)."""
    _upsert(db, {("bridge", "", 0, k[:32]): float(v) for k, v in delta.items() if v > 0})


def _upsert(db: Session, delta: dict[Key, float]) -> None:
    rows = sorted((*k, v) for k, v in delta.items())  # one lock order for every writer
    bulk_sql.executemany(db, UPSERT, rows)


@dataclass
class VersionCounters:
    """What ``/metrics`` shows for one model version."""

    inferences: int = 0
    errors: int = 0
    rejected: int = 0
    buckets: dict[str, int] = field(default_factory=dict)  # per bucket, not cumulative
    latency_sum: float = 0.0


@dataclass
class Counters:
    versions: dict[tuple[str, int], VersionCounters] = field(default_factory=dict)
    bridge: dict[str, int] = field(default_factory=dict)


def read(db: Session) -> Counters:
    """Every counter, in one query."""
    out = Counters()
    t = TABLE.c
    rows: Any = db.execute(select(t.family, t.model_name, t.model_version, t.label, t.value))
    for family, name, version, label, value in rows:
        if family == "bridge":
            out.bridge[label] = int(value)
            continue
        v = out.versions.setdefault((name, version), VersionCounters())
        if family == "latency_bucket":
            v.buckets[label] = int(value)
        elif family == "latency_sum":
            v.latency_sum = float(value)
        elif family in ("inferences", "errors", "rejected"):
            setattr(v, family, int(value))
    return out
