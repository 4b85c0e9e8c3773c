"""A disk-backed, bounded, ordered outbox: telemetry and events survive broker outages,
agent crashes and reboots, and are delivered in order (at least once) when the broker is back.

On disk (one directory): append-only segment files ``seg-<first id>.log`` of framed records
and ``state.json`` (``head`` = id of the oldest undelivered record, ``dropped`` = records
discarded because the outbox was full). A record is
``magic "EK" | version | flags | topic len | payload len | id | crc32 | topic | payload``;
the crc covers everything but itself, so a record torn by a crash (SIGKILL, power cut) is
detected on open, truncated away and the rest kept.

Fsync policy: with ``fsync=True`` (default) ``put`` returns only after the record is on
stable storage, and state changes are written to a temporary file, fsynced and renamed.
Acknowledgements are persisted at most every ``ack_flush_s`` while draining (and when a pass
ends), so a crash may re-send a few already delivered records: delivery is at least once
and consumers de-duplicate by ``(device, boot, seq)``. ``fsync=False`` still survives a
process crash (the page cache outlives it), not a power cut.

Bounds: ``max_messages`` records and ``max_bytes`` of record bytes; when full, the oldest
records are dropped and counted. Disk use stays below ``max_bytes`` plus one segment.

A full disk (ENOSPC, EFBIG, EIO on write) must neither kill the agent nor lose what it was
given: a record that cannot be written is held in memory (:attr:`Outbox.held`, within the
same bounds), delivered from there in order, and written to disk as soon as a write succeeds
again (every put and every drain pass retries). Only a crash while the disk is still full
loses the held records. Writes are unbuffered so a failed append is cut back exactly.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import logging
import math
import os
import struct
import threading
import time
import zlib
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.contract import MAX_PAYLOAD_BYTES
from edge.durable import fsync_dir
from edge.errors import ConfigError, ContractError, StorageError
from edge.messaging.protocol import Transport, check_qos, check_topic

try:  # POSIX: one process per outbox directory
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("edgekit.outbox")

_HEADER = struct.Struct("<2sBBHIQI")  # magic, version, flags, topic len, payload len, id, crc
_MAGIC, _VERSION = b"EK", 1
_STATE = "state.json"


@dataclass(frozen=True)
class OutboxRecord:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True)
class _Entry:
    id: int
    segment: Path | None  # None: held in memory (the disk was full), see ``record``
    offset: int
    size: int
    record: OutboxRecord | None = None


def encode_record(rec: OutboxRecord) -> bytes:
    topic = rec.topic.encode("utf-8")
    flags = rec.qos | (4 if rec.retain else 0)
    head = _HEADER.pack(_MAGIC, _VERSION, flags, len(topic), len(rec.payload), rec.id, 0)
    crc = zlib.crc32(head[:-4] + topic + rec.payload)
    return head[:-4] + struct.pack("<I", crc) + topic + rec.payload


def decode_records(data: bytes) -> tuple[list[tuple[int, OutboxRecord]], int]:
    """Records in ``data`` with their offsets, and the offset where valid data ends."""
    out: list[tuple[int, OutboxRecord]] = []
    pos = 0
    while pos + _HEADER.size <= len(data):
        magic, version, flags, tlen, plen, rid, crc = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + tlen + plen
        if magic != _MAGIC or version != _VERSION or end > len(data):
            break
        body = data[pos + _HEADER.size : end]
        if zlib.crc32(data[pos : pos + _HEADER.size - 4] + body) != crc:
            break
        try:
            topic = body[:tlen].decode("utf-8")
        except UnicodeDecodeError:
            break
        out.append((pos, OutboxRecord(rid, topic, bytes(body[tlen:]), flags & 3, bool(flags & 4))))
        pos = end
    return out, pos


class Outbox:
    """Persist messages with :meth:`put`; deliver them through a transport with :meth:`drain`
    (one pass) or :meth:`start` (a background thread that drains whenever it can)."""

    def __init__(
        self,
        path: Path,
        max_bytes: int = 8 << 20,
        max_messages: int = 50_000,
        *,
        fsync: bool = True,
        segment_bytes: int | None = None,
        ack_flush_s: float = 0.5,
    ) -> None:
        if max_bytes < 1024 or max_messages < 1:
            raise ConfigError("outbox needs max_bytes >= 1024 and max_messages >= 1")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self.fsync = fsync
        self.segment_bytes = segment_bytes or max(64 << 10, max_bytes // 8)
        self.ack_flush_s = ack_flush_s
        self.max_record = min(max_bytes, MAX_PAYLOAD_BYTES + 1024)
        self._lock = threading.RLock()
        self._drain_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._entries: deque[_Entry] = deque()  # on disk, oldest first
        self._memory: deque[_Entry] = deque()  # held in memory, all newer than _entries
        self._disk_error: str | None = None  # why the last write failed, while it does
        self._bytes = 0
        self._head = 0
        self._next_id = 1
        self._dropped = 0
        self._torn = 0
        self._last_drop_log = -math.inf
        self._last_state_log = -math.inf
        self._state_dirty = False
        self._closed = False
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot open outbox {self.path}: {exc}") from exc
        if fcntl is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(self._lock_fd)
                raise StorageError(f"outbox {self.path} is in use by another process") from exc
        self._recover()
        self._active: Path = self._segments()[-1] if self._segments() else self._new_segment_path()
        # unbuffered: a failed append leaves nothing behind in a buffer to be re-sent later
        self._file = open(self._active, "ab", buffering=0)  # noqa: SIM115 - kept open

    # -- public API ----------------------------------------------------------------------

    def put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Store one message durably (in memory while the disk is full); returns its
        record id. Drops the oldest when full."""
        check_topic(topic)
        check_qos(qos)
        if not isinstance(payload, (bytes, bytearray)):
            raise ContractError("outbox payload must be bytes")
        with self._lock:
            if self._closed:
                raise StorageError(f"outbox {self.path} is closed")
            rid = self._next_id
            data = encode_record(OutboxRecord(rid, topic, bytes(payload), qos, retain))
            if len(data) > self.max_record:
                raise ContractError(
                    f"message of {len(data)} bytes exceeds the outbox record limit "
                    f"of {self.max_record} bytes"
                )
            self._make_room(len(data))
            rec = OutboxRecord(rid, topic, bytes(payload), qos, retain)
            self._write_held()
            if self._memory or not self._append(rid, data):
                self._memory.append(_Entry(rid, None, 0, len(data), rec))
            self._bytes += len(data)
            self._next_id = rid + 1
            self._flush_state_if_dirty()
        self._wake.set()
        return rid

    def pending(self, limit: int | None = None) -> list[OutboxRecord]:
        """Undelivered records, oldest first."""
        with self._lock:
            entries = [*self._entries, *self._memory][:limit]
            return [r for r in (self._read(e) for e in entries) if r is not None]

    def stats(self) -> dict[str, int]:
        with self._lock:
            queued = len(self._entries) + len(self._memory)
            return {"queued": queued, "dropped": self._dropped, "bytes": self._bytes}

    @property
    def held(self) -> int:
        """Records held in memory because the disk refused them (0 when all is on disk)."""
        with self._lock:
            return len(self._memory)

    def drain(self, transport: Transport, timeout: float = 5.0, limit: int | None = None) -> int:
        """Publish undelivered records in order until empty, offline or one is not
        acknowledged; delete only acknowledged ones. Returns how many were delivered."""
        sent = 0
        last_flush = time.monotonic()
        with self._drain_lock:
            with self._lock:
                if not self._closed:
                    self._write_held()  # space may have come back
            while (limit is None or sent < limit) and transport.connected:
                with self._lock:
                    if self._closed or not (self._entries or self._memory):
                        break
                    entry = self._entries[0] if self._entries else self._memory[0]
                    rec = self._read(entry)
                    if rec is None:  # unreadable after open: lose one, not the queue
                        self._drop_oldest(1)
                        continue
                if not transport.publish_and_wait(
                    rec.topic, rec.payload, rec.qos, rec.retain, timeout
                ):
                    break
                with self._lock:
                    oldest = self._entries or self._memory
                    if oldest and oldest[0].id == rec.id:
                        self._pop_oldest()
                        self._state_dirty = True
                    if time.monotonic() - last_flush >= self.ack_flush_s:
                        self._flush_state_if_dirty()
                        last_flush = time.monotonic()
                sent += 1
            with self._lock:
                if not self._closed:
                    self._flush_state_if_dirty()
        return sent

    def start(self, transport: Transport, interval: float = 1.0, timeout: float = 5.0) -> None:
        """Drain in a background thread: on every put, every reconnect and every interval."""
        if self._thread is not None:
            return
        transport.add_connect_listener(self._wake.set)

        def run() -> None:
            while not self._stop.is_set():
                self._wake.wait(interval)
                self._wake.clear()
                if self._stop.is_set():
                    break
                try:
                    self.drain(transport, timeout)
                except Exception:  # never let the drainer die silently
                    log.exception("outbox drain failed")
                    self._stop.wait(interval)

        self._thread = threading.Thread(target=run, name="outbox-drain", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the drainer, persist the state and release the directory."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            if self._closed:
                return
            self._write_held()
            if self._memory:
                log.error(
                    "outbox %s: %d messages held in memory (disk full: %s) are lost at close",
                    self.path, len(self._memory), self._disk_error,
                )  # fmt: skip
            self._flush_state_if_dirty()
            self._closed = True
            self._file.close()
            os.close(self._lock_fd)

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------

    def _segments(self) -> list[Path]:
        return sorted(self.path.glob("seg-*.log"))

    def _new_segment_path(self, first_id: int | None = None) -> Path:
        return self.path / f"seg-{first_id if first_id is not None else self._next_id:020d}.log"

    def _recover(self) -> None:
        """Load state and index every valid undelivered record; cut torn tails."""
        state = self._load_state()
        self._head, self._dropped = state.get("head", 0), state.get("dropped", 0)
        last_id = -1
        segments = self._segments()
        for i, seg in enumerate(segments):
            try:
                data = seg.read_bytes()
            except OSError as exc:
                raise StorageError(f"cannot read outbox segment {seg}: {exc}") from exc
            records, valid_end = decode_records(data)
            for offset, rec in records:
                if rec.id <= last_id:  # ids only grow; anything else is damage
                    valid_end = offset
                    break
                last_id = rec.id
                if rec.id >= self._head:
                    size = len(encode_record(rec))
                    self._entries.append(_Entry(rec.id, seg, offset, size))
                    self._bytes += size
            if valid_end < len(data):
                self._torn += 1
                log.warning(
                    "outbox %s: %d damaged bytes at the end, skipped",
                    seg.name,
                    len(data) - valid_end,
                )
                if i == len(segments) - 1:
                    with open(seg, "r+b") as f:
                        f.truncate(valid_end)
        self._next_id = max(last_id + 1, self._head, 1)
        self._delete_consumed_segments()
        self._make_room(0)
        self._flush_state_if_dirty()

    def _load_state(self) -> dict[str, int]:
        path = self.path / _STATE
        try:
            obj = json.loads(path.read_text())
            head, dropped = obj["head"], obj["dropped"]
            if not (isinstance(head, int) and isinstance(dropped, int)) or head < 0 or dropped < 0:
                raise ValueError("bad values")
            return {"head": head, "dropped": dropped}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("outbox state %s unreadable (%s); re-sending everything kept", path, exc)
            return {}

    def _append(self, rid: int, data: bytes) -> bool:
        """Append one record to the active segment; False (and nothing left behind) if the
        disk refuses it, so the caller holds it in memory."""
        if self._file.tell() > 0 and self._file.tell() + len(data) > self.segment_bytes:
            self._roll_segment(rid)
        offset = self._file.tell()
        try:
            view = memoryview(data)
            while view:
                n = self._file.write(view)
                if not n:
                    raise OSError(errno.ENOSPC, "short write")
                view = view[n:]
            if self.fsync:
                os.fsync(self._file.fileno())
        except OSError as exc:
            self._truncate_active(offset)
            if self._disk_error is None:
                log.error(
                    "outbox %s: cannot write (%s); holding messages in memory until it can",
                    self.path, exc,
                )  # fmt: skip
            self._disk_error = str(exc)
            return False
        self._entries.append(_Entry(rid, self._active, offset, len(data)))
        return True

    def _write_held(self) -> None:
        """Write records held in memory to disk, oldest first, until one fails."""
        written = 0
        while self._memory:
            entry = self._memory[0]
            assert entry.record is not None
            if not self._append(entry.id, encode_record(entry.record)):
                return
            self._memory.popleft()
            written += 1
        if self._disk_error is not None:
            log.warning("outbox %s: writing again (%d held messages written)", self.path, written)
            self._disk_error = None

    def _flush_state_if_dirty(self) -> None:
        """Persist head/dropped; a failure is logged and retried later (the records stay;
        at worst some delivered ones are re-sent after a crash)."""
        if not self._state_dirty:
            return
        tmp = self.path / (_STATE + ".tmp")
        data = json.dumps({"head": self._head, "dropped": self._dropped}).encode()
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, self.path / _STATE)
            if self.fsync:
                fsync_dir(self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            now = time.monotonic()
            if now - self._last_state_log >= 60:
                self._last_state_log = now
                log.warning("cannot write outbox state in %s (retried later): %s", self.path, exc)
            return
        self._state_dirty = False
        self._delete_consumed_segments()

    def _make_room(self, incoming: int) -> None:
        extra = 1 if incoming else 0
        n = 0
        while (self._entries or self._memory) and (
            len(self._entries) + len(self._memory) + extra > self.max_messages
            or self._bytes + incoming > self.max_bytes
        ):
            self._pop_oldest()
            n += 1
        if n:
            self._dropped += n
            self._state_dirty = True
            now = time.monotonic()
            if now - self._last_drop_log >= 60:  # one line a minute, not one per message
                self._last_drop_log = now
                log.warning("outbox full: dropping the oldest messages (%d so far)", self._dropped)

    def _drop_oldest(self, n: int) -> None:
        for _ in range(min(n, len(self._entries) + len(self._memory))):
            self._pop_oldest()
            self._dropped += 1
        self._state_dirty = True

    def _pop_oldest(self) -> None:
        entry = self._entries.popleft() if self._entries else self._memory.popleft()
        self._bytes -= entry.size
        self._head = entry.id + 1

    def _delete_consumed_segments(self) -> None:
        """Delete segments whose every record lies before ``head`` (never the active one)."""
        segments = self._segments()
        for seg, nxt in itertools.pairwise(segments):
            if int(nxt.stem[4:]) <= self._head:
                with contextlib.suppress(OSError):
                    seg.unlink()

    def _roll_segment(self, first_id: int) -> None:
        path = self._new_segment_path(first_id)
        try:  # open the new one first: a full disk keeps the current segment usable
            new = open(path, "ab", buffering=0)  # noqa: SIM115
            if self.fsync:
                fsync_dir(self.path)
        except OSError as exc:
            log.warning("outbox %s: cannot start segment %s: %s", self.path, path.name, exc)
            return
        self._file.close()
        self._active, self._file = path, new
        self._delete_consumed_segments()

    def _truncate_active(self, offset: int) -> None:
        with contextlib.suppress(OSError):
            os.ftruncate(self._file.fileno(), offset)
        with contextlib.suppress(OSError):
            self._file.seek(offset)

    def _read(self, entry: _Entry) -> OutboxRecord | None:
        if entry.segment is None:
            return entry.record
        try:
            with open(entry.segment, "rb") as f:
                f.seek(entry.offset)
                data = f.read(entry.size)
        except OSError as exc:
            log.error("outbox record %d unreadable: %s", entry.id, exc)
            return None
        records, _end = decode_records(data)
        if not records or records[0][1].id != entry.id:
            log.error("outbox record %d is damaged", entry.id)
            return None
        return records[0][1]
