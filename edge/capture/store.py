"""The bounded, durable queue of captured samples waiting for upload.

On disk (one directory, one process: ``flock`` on ``lock``): ``samples/<seq>-<id>.json``,
one file per sample holding its wire form (edge/contract/samples.py), and ``state.json``
with the counters (``captured``, ``dropped``, ``uploaded``, ``rejected``) and ``requested``
(inputs still to keep on the operator's request). The outbox's durability rules
(edge/messaging/outbox.py): every file is written to a temporary name, fsync'd, renamed and
its directory fsync'd (edge/durable.py), so a crash or power cut leaves either the whole
sample or none; temporary files left by a crash are deleted on open, and a file that no
longer parses is dropped and counted when read, not trusted.

Bounds: the files' bytes stay within ``max_bytes``; a new sample that does not fit drops
the oldest ones first (counted in ``dropped``). A full disk (ENOSPC, EDQUOT, or EFBIG from a
file-size limit) is treated the same way: the oldest sample goes and the write is retried;
with nothing left to drop the write fails with StorageError and nothing half-written stays.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edge.contract import Sample, decode_json, encode_json
from edge.durable import write_atomic
from edge.errors import ConfigError, ContractError, StorageError

try:  # POSIX: one process per store directory
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("edgekit.capture")

_STATE = "state.json"
_NAME = re.compile(r"(\d{12})-([0-9a-f]{32})\.json")
COUNTERS = ("captured", "dropped", "uploaded", "rejected")
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class SampleStore:
    """Pending samples, oldest first; thread-safe."""

    def __init__(self, path: Path, max_bytes: int, *, fsync: bool = True) -> None:
        if max_bytes < 1:
            raise ConfigError("the capture store needs a budget of at least 1 byte")
        self.path = Path(path)
        self.dir = self.path / "samples"
        self.max_bytes = max_bytes
        self.fsync = fsync
        self._lock = threading.RLock()
        self._entries: OrderedDict[str, tuple[Path, int]] = OrderedDict()  # id -> file, size
        self._bytes = 0
        self._seq = 0
        self.counters = dict.fromkeys(COUNTERS, 0)
        self._requested = 0
        self._closed = False
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(f"cannot open the capture store {self.path}: {exc}") from exc
        if fcntl is not None:
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(self._lock_fd)
                raise StorageError(
                    f"capture store {self.path} is in use by another process"
                ) from exc
        self._recover()

    # -- public API ----------------------------------------------------------------------

    def put(self, sample: Sample) -> None:
        """Keep ``sample`` durably, dropping the oldest to make room; StorageError when the
        disk takes nothing even with every older sample gone."""
        data = encode_json(sample.to_dict())
        with self._lock:
            self._check_open()
            if sample.id in self._entries:
                return
            if len(data) > self.max_bytes:
                self._count("dropped")
                self._save_state()
                raise StorageError(
                    f"sample of {len(data)} bytes exceeds the capture budget of "
                    f"{self.max_bytes} bytes"
                )
            self._make_room(len(data))
            self._seq += 1
            file = self.dir / f"{self._seq:012d}-{sample.id}.json"
            self._write(file, data)
            self._entries[sample.id] = (file, len(data))
            self._bytes += len(data)
            self._count("captured")
            self._save_state()

    def pending(self, limit: int, max_bytes: int | None = None) -> list[Sample]:
        """Up to ``limit`` oldest samples (and at most ``max_bytes`` of them, but always
        one). A file that is unreadable or no longer parses is dropped and counted."""
        out: list[Sample] = []
        size = 0
        with self._lock:
            self._check_open()
            for sid, (file, nbytes) in list(self._entries.items()):
                if len(out) >= limit or (out and max_bytes and size + nbytes > max_bytes):
                    break
                try:
                    sample = Sample.from_dict(decode_json(file.read_bytes(), limit=1 << 30))
                except (OSError, ContractError) as exc:
                    log.error("captured sample %s is damaged (%s); dropped", file.name, exc)
                    self._forget(sid)
                    self._count("dropped")
                    continue
                out.append(sample)
                size += nbytes
            self._save_state()
        return out

    def remove(self, ids: Iterable[str], outcome: str = "uploaded") -> int:
        """Delete these samples (the hub has them, or refused them: ``outcome``)."""
        if outcome not in ("uploaded", "rejected"):
            raise ValueError(f"unknown outcome {outcome!r}")
        n = 0
        with self._lock:
            self._check_open()
            for sid in ids:
                if self._forget(sid):
                    self.counters[outcome] += 1
                    n += 1
            if n:
                self._save_state()
        return n

    def set_budget(self, max_bytes: int) -> None:
        """A new disk budget; samples over it are dropped oldest first."""
        with self._lock:
            self.max_bytes = max(1, max_bytes)
            if self._bytes > self.max_bytes:
                self._make_room(0)
                self._save_state()

    @property
    def requested(self) -> int:
        return self._requested

    @requested.setter
    def requested(self, n: int) -> None:
        with self._lock:
            if n != self._requested:
                self._requested = max(0, n)
                self._save_state()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                **self.counters,
                "pending": len(self._entries),
                "pending_bytes": self._bytes,
                "requested": self._requested,
            }

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            os.close(self._lock_fd)

    def __enter__(self) -> SampleStore:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError(f"capture store {self.path} is closed")

    def _count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def _recover(self) -> None:
        self._load_state()
        for leftover in self.dir.glob(".*.tmp"):  # a write a crash interrupted
            with contextlib.suppress(OSError):
                leftover.unlink()
        found: list[tuple[int, str, Path, int]] = []
        for file in self.dir.iterdir():
            m = _NAME.fullmatch(file.name)
            if m is None:
                continue
            try:
                size = file.stat().st_size
            except OSError:
                continue
            found.append((int(m.group(1)), m.group(2), file, size))
        for seq, sid, file, size in sorted(found):
            self._entries[sid] = (file, size)
            self._bytes += size
            self._seq = max(self._seq, seq)
        if self._bytes > self.max_bytes:
            self._make_room(0)
            self._save_state()

    def _load_state(self) -> None:
        path = self.path / _STATE
        try:
            obj = json.loads(path.read_text())
            for name in (*COUNTERS, "requested"):
                value = obj.get(name, 0)
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"bad {name!r}")
            self.counters = {name: obj.get(name, 0) for name in COUNTERS}
            self._requested = obj.get("requested", 0)
        except FileNotFoundError:
            return
        except (OSError, ValueError, AttributeError) as exc:
            log.warning("capture state %s unreadable (%s); counters start again", path, exc)

    def _save_state(self) -> None:
        data = json.dumps({**self.counters, "requested": self._requested}).encode()
        self._write(self.path / _STATE, data)

    def _write(self, file: Path, data: bytes) -> None:
        """Write ``file`` durably; on a full disk drop the oldest sample and try again."""
        while True:
            try:
                if self.fsync:
                    write_atomic(file, data)
                else:
                    tmp = file.with_name(f".{file.name}.tmp")
                    tmp.write_bytes(data)
                    os.replace(tmp, file)
                return
            except OSError as exc:
                if exc.errno not in DISK_FULL or not self._drop_oldest(exclude=file):
                    with contextlib.suppress(OSError):
                        file.with_name(f".{file.name}.tmp").unlink()
                    raise StorageError(f"cannot write {file.name} in {self.dir}: {exc}") from exc
                log.warning("disk full writing %s: dropped the oldest captured sample", file.name)

    def _make_room(self, incoming: int) -> None:
        dropped = 0
        while self._entries and self._bytes + incoming > self.max_bytes:
            self._forget(next(iter(self._entries)))
            dropped += 1
        if dropped:
            self._count("dropped", dropped)
            log.info("capture budget of %d bytes full: dropped %d oldest", self.max_bytes, dropped)

    def _drop_oldest(self, exclude: Path) -> bool:
        for sid, (file, _size) in self._entries.items():
            if file != exclude:
                self._forget(sid)
                self._count("dropped")
                return True
        return False

    def _forget(self, sid: str) -> bool:
        entry = self._entries.pop(sid, None)
        if entry is None:
            return False
        file, size = entry
        self._bytes -= size
        with contextlib.suppress(FileNotFoundError):
            file.unlink()
        return True
