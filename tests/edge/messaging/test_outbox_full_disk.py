"""A full disk under the outbox: puts keep working (held in memory, in order), nothing is
left half-written on disk, delivery goes on, and the held records reach the disk when space
returns. The disk is faked at the file object (ENOSPC from ``write``); the real thing, a
full tmpfs under a running agent, is tests/faults/test_full_disk.py."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Any

from edge.messaging import MemoryBroker, MemoryTransport, Outbox


class FullDisk:
    """Wraps the outbox's segment file: while ``full``, writes fail as on a full disk
    (after a partial write of ``partial`` bytes, as the kernel may do)."""

    def __init__(self, inner: Any, partial: int = 5) -> None:
        self.inner, self.full, self.partial = inner, False, partial

    def write(self, data: Any) -> int:
        if self.full:
            if self.partial and len(data) > self.partial:
                n = self.inner.write(bytes(data[: self.partial]))
                self.partial = 0
                return int(n)
            raise OSError(errno.ENOSPC, "No space left on device")
        return int(self.inner.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_full_disk_holds_in_memory_and_writes_back(tmp_path: Path) -> None:
    box = Outbox(tmp_path, segment_bytes=1 << 20)
    disk = FullDisk(box._file)
    box._file = disk  # type: ignore[assignment]
    box.put("t/a", b"m0")
    disk.full = True
    assert [box.put("t/a", b"m%d" % i) for i in (1, 2, 3)] == [2, 3, 4]  # no exception
    assert box.held == 3 and box.stats()["queued"] == 4
    assert [r.payload for r in box.pending()] == [b"m0", b"m1", b"m2", b"m3"]
    disk.full = False
    box.put("t/a", b"m4")  # the next write succeeds: held ones first, in order
    assert box.held == 0
    box.close()
    with Outbox(tmp_path) as again:  # on disk, intact: the partial write was cut back
        assert [r.payload for r in again.pending()] == [b"m%d" % i for i in range(5)]
        assert [r.id for r in again.pending()] == [1, 2, 3, 4, 5]


def test_full_disk_still_delivers_and_drain_writes_back(tmp_path: Path) -> None:
    broker = MemoryBroker()
    got: list[bytes] = []
    watcher = MemoryTransport(broker, "watcher")
    watcher.subscribe("t/#", lambda _t, p: got.append(p))
    watcher.connect()
    agent = MemoryTransport(broker, "agent")
    box = Outbox(tmp_path, segment_bytes=1 << 20)
    disk = FullDisk(box._file, partial=0)
    box._file = disk  # type: ignore[assignment]
    disk.full = True
    for i in range(3):
        box.put("t/a", b"h%d" % i)
    agent.connect()
    assert box.drain(agent) == 3  # delivered from memory, in order
    assert got == [b"h0", b"h1", b"h2"] and box.held == 0
    box.put("t/a", b"h3")
    assert box.held == 1
    disk.full = False
    assert box.drain(agent) == 1  # the pass first writes what was held, then delivers
    assert got[-1] == b"h3" and box.stats()["queued"] == 0
    box.close()


def test_full_disk_respects_bounds(tmp_path: Path) -> None:
    box = Outbox(tmp_path, max_messages=3, segment_bytes=1 << 20)
    disk = FullDisk(box._file, partial=0)
    box._file = disk  # type: ignore[assignment]
    disk.full = True
    for i in range(5):
        box.put("t/a", b"x%d" % i)
    assert [r.payload for r in box.pending()] == [b"x2", b"x3", b"x4"]
    assert box.stats()["dropped"] == 2
    box.close()


def test_state_write_failure_is_not_fatal(tmp_path: Path) -> None:
    broker = MemoryBroker()
    agent = MemoryTransport(broker, "agent")
    agent.connect()
    box = Outbox(tmp_path)
    box.put("t/a", b"a")
    (tmp_path / "state.json.tmp").mkdir()  # the state cannot be written: open() fails
    assert box.drain(agent) == 1  # delivery goes on; the state is retried later
    assert box.put("t/a", b"b") == 2
    (tmp_path / "state.json.tmp").rmdir()
    box.close()
    with Outbox(tmp_path) as again:
        assert [r.payload for r in again.pending()] == [b"b"]
