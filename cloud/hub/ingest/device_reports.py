"""What a device reports about itself, applied in device time, not arrival time.

The bridge writes in batches, replays from agents' outboxes arrive late, and several hub
workers write concurrently, so a message can reach the database after a newer one. The
device row therefore only moves forward: each group of fields (the model, ``online``, the
latest KPIs) remembers which report set it, and a message changes a group only when it
is newer than that report.

**Ordering rule** (``newer``): two reports of the same run (``boot``) on the same topic
compare by ``seq`` (a counter cannot step back, a clock can); of the same run on different
topics (status vs telemetry) by the device clock ``ts`` (a tie goes to the status). Across
runs, ``boot`` ids are random, so a *status* of another run always wins: an agent publishes
its status first on every connect, statuses are never replayed, and a restarted device's
clock may be behind its previous run. *Telemetry* of a run other than the one the latest
status announced never changes the model or KPIs: it is either replayed from an old run's
outbox (older) or comes from a new run whose status is about to arrive. Before any status
is known, telemetry of another run wins when its ``ts`` is newer.

The ``offline`` will is the broker speaking for a dead connection; its ``ts`` is when that
connection was opened, so it is not compared by time for its own run: it flips ``online``
off when it belongs to the announced run, and a will of another run only when it is newer
than the report that set the model (an old run's will arriving after a restart is ignored).
Events never change these fields.

**Device clocks are not trusted far** (``check_clock``, applied to every message before it
is stored): a ``ts`` more than :data:`MAX_CLOCK_SKEW_S` ahead of the hub's clock is replaced
by the arrival time, so no report can claim a future that later reports never reach, and a
``seq`` outside 64 bits is refused. Within one run and topic a ``seq`` more than
:data:`MAX_SEQ_STEP` ahead of the last one is believed only when its clock moved forward
too, and such a jump is overtaken by the next report whose clock is later: one message
with a huge ``seq`` cannot freeze a device's KPIs for longer than the skew allowance.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple, cast

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from cloud.hub.ingest import drift_store
from cloud.hub.ingest.telemetry_fields import (
    Sample,
    TelemetryIn,
    TelemetryLike,
    device_kpis,
    staleness_window,
)
from cloud.hub.storage import Device, EventRow, bulk_sql
from edge.contract import STATUS, TELEMETRY, Event, Status
from edge.errors import ContractError

DEVICE_TABLE = cast(Table, Device.__table__)
MAX_CLOCK_SKEW_S = 60.0  # how far ahead of the hub a device clock may run and be believed
MAX_SEQ_STEP = 100_000  # a larger jump within one run needs a later clock to be believed
SEQ_MIN, SEQ_MAX = -(2**63), 2**63 - 1  # what the BIGINT columns hold

Reported = Status | Event | TelemetryIn


def check_clock(msg: Reported, now: float) -> tuple[Reported, bool]:
    """``msg`` with a ``ts`` the hub can order by, and whether it had to be clamped: a
    clock beyond ``now + MAX_CLOCK_SKEW_S`` becomes ``now``. ContractError (the message is
    dropped and counted) for a ``ts`` before 1970 or not finite, or a ``seq`` beyond 64 bits."""
    ts, seq = msg.ts, msg.seq
    if not math.isfinite(ts) or ts < 0:
        raise ContractError(f"{msg.device}: ts {ts!r} is not a time after 1970")
    if not SEQ_MIN <= seq <= SEQ_MAX:
        raise ContractError(f"{msg.device}: seq {seq} does not fit in 64 bits")
    if ts <= now + MAX_CLOCK_SKEW_S:
        return msg, False
    if isinstance(msg, (Status, Event)):
        return dataclasses.replace(msg, ts=now), True
    msg.ts = now  # TelemetryIn: the hub's own mutable record of one message
    return msg, True


class Report(NamedTuple):
    """Where one report sits in device time: its topic, run, per-topic counter and clock
    (a tuple: one is built per ingested message)."""

    kind: str  # STATUS | TELEMETRY
    boot: str | None
    seq: int | None
    ts: float | None


def newer(msg: Report, last: Report | None, run_boot: str | None, announced: bool) -> bool:
    """True when ``msg`` may overwrite what ``last`` set (see the module docstring).

    ``run_boot`` is the device's current run; ``announced`` says a status of it was seen."""
    unannounced = msg.kind != STATUS and announced and msg.boot != run_boot
    if unannounced and (last is None or last.boot != msg.boot):
        return False  # telemetry of a run the latest status did not announce
    if last is None or last.ts is None or msg.ts is None:
        return True
    if msg.boot is not None and msg.boot == last.boot:
        if msg.kind == last.kind and msg.seq is not None and last.seq is not None:
            if abs(msg.seq - last.seq) > MAX_SEQ_STEP:  # a jump: believed with the clock
                return msg.ts > last.ts
            return msg.seq > last.seq
        return msg.ts > last.ts or (msg.ts == last.ts and msg.kind == STATUS)
    if msg.kind == STATUS or (msg.boot is not None and msg.boot == run_boot):
        return True  # a new run announced itself, or the announced run beats an older one
    return not announced and msg.ts > last.ts


def will_applies(will: Status, last: Report | None, run_boot: str | None) -> bool:
    """Whether an ``offline`` will may flip the device offline (see the module docstring)."""
    if run_boot is None or will.boot == run_boot:
        return True
    return last is None or last.ts is None or will.ts > last.ts


def model_report(dev: Device) -> Report | None:
    """The report that last set ``dev``'s model fields (None for rows from before 0002)."""
    if dev.model_ts is None:
        return None
    return Report(dev.model_src or STATUS, dev.boot, dev.model_seq, dev.model_ts)


def load_devices(s: Session, device_ids: set[str]) -> list[Device]:
    """The existing rows of ``device_ids``, loaded into the session in chunked SELECTs
    (keep the list: the session holds its objects weakly)."""
    ids = sorted(device_ids)
    rows: list[Device] = []
    for i in range(0, len(ids), 500):
        rows += s.scalars(select(Device).where(Device.id.in_(ids[i : i + 500]))).all()
    return rows


def ensure_device(s: Session, device_id: str, now: float) -> Device:
    """The device row (created unenrolled on first contact), with ``last_seen`` = now."""
    dev: Device | None = s.get(Device, device_id)
    if dev is None:
        dev = Device(id=device_id, tags=[], first_seen=now, capabilities={}, kpis={})
        s.add(dev)
        s.flush()
    dev.last_seen = now
    return dev


def apply_status(s: Session, st: Status, now: float) -> bool:
    """What the device says it is and runs, if newer than what the row holds; returns
    whether it was applied. The offline will only flips ``online``: its model fields were
    written when the agent connected and may be stale."""
    dev = ensure_device(s, st.device, now)
    last = model_report(dev)
    if st.state == "offline":
        if not will_applies(st, last, dev.boot):
            return False
        dev.online = False
        return True
    msg = Report(STATUS, st.boot, st.seq, st.ts)
    if not newer(msg, last, dev.boot, dev.seq is not None):
        return False
    dev.online = True
    dev.agent_version = st.agent_version
    dev.boot, dev.seq = st.boot, st.seq
    dev.model_ts, dev.model_seq, dev.model_src = st.ts, st.seq, STATUS
    dev.capabilities = dict(st.capabilities)
    if st.model is None:
        dev.model_name = dev.model_version = dev.model_runtime = dev.model_precision = None
    else:
        dev.model_name, dev.model_version = st.model.name, st.model.version
        dev.model_runtime, dev.model_precision = st.model.runtime, st.model.precision
    return True


def event_row(e: Event) -> EventRow:
    """An event as stored (strings cut to their column sizes); events never touch the
    device's model or state — only the status and telemetry report those."""
    return EventRow(
        device_id=e.device,
        ts=e.ts,
        seq=e.seq,
        boot=e.boot,
        kind=e.kind[:16],
        step=e.step[:32] if e.step else None,
        message=e.message[:4000],
        rollout=e.rollout[:32] if e.rollout else None,
        command=e.command[:96] if e.command else None,
        version=e.version,
        detail=e.detail,
    )


def _telemetry_report(t: TelemetryLike) -> Report:
    return Report(TELEMETRY, t.boot, t.seq, t.ts)


_MODEL_COLS = ("model_name", "model_version", "model_runtime", "model_precision")
_MODEL_UPDATE = ("boot", "model_ts", "model_seq", "model_src", *_MODEL_COLS)


def refresh_from_telemetry(
    db: Session,
    per_device: dict[str, list[tuple[TelemetryLike, Sample]]],
    now: float,
    stale_intervals: float,
    offline_after_s: float,
) -> None:
    """Apply one batch's telemetry to device rows, in device time: the newest KPIs, the
    model the device reports (when newer than the report that set it), ``last_seen``, and
    rows for devices first heard of through telemetry — two bulk UPDATEs per batch — and,
    from the same newest telemetry, the drifting features (drift_store.py).

    A device marked offline only because it went silent is online again once it sends:
    an offline device whose last message is older than its staleness window, by telemetry
    stamped after that last message (a replay of older samples does not count). A fresh
    ``offline`` will (it set ``last_seen`` just now) is never overridden. The model UPDATE
    only lands when no other writer moved the model clock since it was read."""
    d = DEVICE_TABLE
    cols = (d.c.id, d.c.kpis_ts, d.c.kpis_boot, d.c.kpis_seq, d.c.online, d.c.last_seen,
            d.c.boot, d.c.seq, d.c.model_ts, d.c.model_seq, d.c.model_src,
            *(d.c[c] for c in _MODEL_COLS))  # fmt: skip
    known = {r.id: r for r in db.execute(select(*cols).where(d.c.id.in_(list(per_device))))}
    new: list[dict[str, Any]] = []
    kpi_rows: list[tuple[Any, ...]] = []
    seen_rows: list[tuple[Any, ...]] = []
    model_rows: list[tuple[Any, ...]] = []
    best: list[tuple[TelemetryLike, Sample] | None] = []  # per device: what sets its KPIs
    for device_id, items in per_device.items():
        row = known.get(device_id)
        run_boot = row.boot if row is not None else None
        announced = row is not None and row.seq is not None
        kpi_last = None
        if row is not None and row.kpis_ts is not None:
            kpi_last = Report(TELEMETRY, row.kpis_boot, row.kpis_seq, row.kpis_ts)
        model_last = None
        if row is not None and row.model_ts is not None:
            model_last = Report(row.model_src or STATUS, row.boot, row.model_seq, row.model_ts)
        kpi_best: tuple[TelemetryLike, Sample] | None = None
        model_best: TelemetryLike | None = None
        for t, s in items:
            rep = _telemetry_report(t)
            if newer(rep, kpi_last, run_boot, announced):
                kpi_last, kpi_best = rep, (t, s)
            if newer(rep, model_last, run_boot, announced):
                model_last, model_best = rep, t
        best.append(kpi_best)
        if row is None:
            t0 = model_best or items[-1][0]
            k = kpi_best[0] if kpi_best is not None else None
            # first heard of through telemetry: online if that telemetry is fresh (a
            # device that sends is up), not when it is an outbox replay of old samples
            fresh = k is not None and now - k.ts <= staleness_window(
                k.metrics.get("interval_s"), stale_intervals, offline_after_s
            )
            # last heard of in device time when that was long ago, so that the device comes
            # online with its next fresh message (see "back" below)
            heard = now if fresh or k is None else min(now, k.ts)
            new.append({"id": device_id, "tags": [], "first_seen": now, "last_seen": heard,
                        "online": fresh,
                        "capabilities": {}, "kpis": device_kpis(*kpi_best) if kpi_best else {},
                        "kpis_ts": k.ts if k else None, "kpis_boot": k.boot if k else None,
                        "kpis_seq": k.seq if k else None, "boot": t0.boot,
                        **_model_values(t0, None)})  # fmt: skip
            continue
        back = False
        if kpi_best is not None and not row.online:
            interval = kpi_best[0].metrics.get("interval_s")
            window = staleness_window(interval, stale_intervals, offline_after_s)
            # ... and only by telemetry produced after we last heard from it: an outbox
            # replay of old samples is history, not a sign of life.
            heard = row.last_seen or 0.0
            back = now - heard > window and kpi_best[0].ts > heard
        online = True if back else row.online
        # an offline device's last_seen stays when it was last believed: moved on by every
        # message, a device swept offline by a report that came late (a first window of
        # minutes) would never be ``back`` while it kept reporting
        seen = now if online else row.last_seen
        if kpi_best is None:
            seen_rows.append((online, seen, device_id))
        else:
            t, s = kpi_best
            kpis = bulk_sql.json_text(device_kpis(t, s))
            kpi_rows.append((kpis, t.ts, t.boot, t.seq, online, seen, device_id))
        if model_best is not None:
            values = _model_values(model_best, row)
            model_rows.append((model_best.boot, *(values[c] for c in _MODEL_UPDATE[1:]),
                               device_id, row.model_ts))  # fmt: skip
    if new:
        db.execute(insert(d), new)
    kpi_cols = ("kpis", "kpis_ts", "kpis_boot", "kpis_seq", "online", "last_seen")
    bulk_sql.executemany(db, bulk_sql.update_sql(d.name, kpi_cols, "id = ?"), kpi_rows)
    seen_cols = ("online", "last_seen")
    bulk_sql.executemany(db, bulk_sql.update_sql(d.name, seen_cols, "id = ?"), seen_rows)
    where = f"id = ? AND {bulk_sql.null_safe_equal(db, 'model_ts')}"
    bulk_sql.executemany(db, bulk_sql.update_sql(d.name, _MODEL_UPDATE, where), model_rows)
    drift_store.apply(db, [b[0] for b in best if b is not None])


def _model_values(t: TelemetryLike, row: Any) -> dict[str, Any]:
    """Model columns from a telemetry report; runtime and precision are kept from the row
    when the telemetry names the same model version without them."""
    values: dict[str, Any] = {"model_ts": t.ts, "model_seq": t.seq, "model_src": TELEMETRY}
    m = t.model
    if m is None:
        return {**values, **dict.fromkeys(_MODEL_COLS)}
    same = row is not None and (row.model_name, row.model_version) == (m.name, m.version)
    return {
        **values,
        "model_name": m.name,
        "model_version": m.version,
        "model_runtime": m.runtime or (row.model_runtime if same else None),
        "model_precision": m.precision or (row.model_precision if same else None),
    }
