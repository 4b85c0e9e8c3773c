"""The capture store: bounded by its disk budget (oldest dropped first, counted), durable
across restarts, and safe on a full disk."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edge.capture import SampleStore
from edge.contract import encode_json
from edge.errors import StorageError
from tests.edge.capture.samples_kit import sample


def size_of(s: object) -> int:
    return len(encode_json(s.to_dict()))  # type: ignore[attr-defined]


def test_fifo_and_outcomes(tmp_path: Path) -> None:
    samples = [sample(kind) for kind in ("image", "tabular", "array")]
    with SampleStore(tmp_path, 1 << 20) as store:
        for s in samples:
            store.put(s)
        store.put(samples[0])  # the same id again: kept once
        assert [s.id for s in store.pending(10)] == [s.id for s in samples]
        assert store.pending(10) == samples
        assert [s.id for s in store.pending(2)] == [s.id for s in samples[:2]]
        assert store.remove([samples[0].id, "f" * 32]) == 1
        assert store.remove([samples[1].id], "rejected") == 1
        stats = store.stats()
    assert stats["captured"] == 3 and stats["uploaded"] == 1 and stats["rejected"] == 1
    assert stats["pending"] == 1 and stats["pending_bytes"] == size_of(samples[2])


def test_budget_drops_oldest_first_and_counts(tmp_path: Path) -> None:
    samples = [sample() for _ in range(10)]
    one = size_of(samples[0])
    with SampleStore(tmp_path, 3 * one + 10) as store:  # room for three
        for s in samples:
            store.put(s)
        assert [s.id for s in store.pending(10)] == [s.id for s in samples[-3:]]
        assert store.stats()["dropped"] == 7
        assert store.stats()["pending_bytes"] <= 3 * one + 10
        store.set_budget(one + 10)  # a smaller budget (a config command) applies at once
        assert [s.id for s in store.pending(10)] == [samples[-1].id]
        assert store.stats()["dropped"] == 9
        store.set_budget(10)
        with pytest.raises(StorageError, match="exceeds the capture budget"):
            store.put(sample())
        assert store.stats()["dropped"] == 11  # the one left, and the one that never fit
    assert len(list((tmp_path / "samples").iterdir())) == 0


def test_survives_restart(tmp_path: Path) -> None:
    samples = [sample(kind) for kind in ("image", "tabular", "array")]
    store = SampleStore(tmp_path, 1 << 20)
    for s in samples:
        store.put(s)
    store.remove([samples[0].id])
    store.requested = 4
    store.close()
    # a crash mid-write leaves a temporary file: deleted on open, never taken for a sample
    (tmp_path / "samples" / ".000000000009-x.json.abc.tmp").write_bytes(b"{half")
    with SampleStore(tmp_path, 1 << 20) as again:
        assert again.pending(10) == samples[1:]
        assert again.stats() | {"pending_bytes": 0} == {
            "captured": 3, "dropped": 0, "uploaded": 1, "rejected": 0, "pending": 2,
            "pending_bytes": 0, "requested": 4,
        }  # fmt: skip
        later = sample()
        again.put(later)  # numbered after the survivors: order holds across restarts
        assert again.pending(10)[-1] == later
    assert not list((tmp_path / "samples").glob(".*.tmp"))


def test_damaged_file_is_dropped_and_counted(tmp_path: Path) -> None:
    a, b = sample(), sample()
    with SampleStore(tmp_path, 1 << 20) as store:
        store.put(a)
        store.put(b)
    first = sorted((tmp_path / "samples").iterdir())[0]
    first.write_bytes(first.read_bytes()[:40])  # torn by something outside our writes
    with SampleStore(tmp_path, 1 << 20) as store:
        assert store.pending(10) == [b]
        assert store.stats()["dropped"] == 1 and store.stats()["pending"] == 1


def test_one_process_per_directory(tmp_path: Path) -> None:
    with SampleStore(tmp_path, 1 << 20), pytest.raises(StorageError, match="in use"):
        SampleStore(tmp_path, 1 << 20)


def test_full_disk_drops_oldest_and_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC on a write: the oldest sample makes room; with nothing left, StorageError."""
    import edge.capture.store as store_mod

    real = store_mod.write_atomic
    failures = {"left": 1}

    def full_once(path: Path, data: bytes) -> None:
        if path.suffix == ".json" and path.parent.name == "samples" and failures["left"]:
            failures["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    with SampleStore(tmp_path, 1 << 20) as store:
        old, new = sample(), sample()
        store.put(old)
        monkeypatch.setattr(store_mod, "write_atomic", full_once)
        store.put(new)
        assert store.pending(10) == [new] and store.stats()["dropped"] == 1

        def always_full(path: Path, data: bytes) -> None:
            if path.parent.name == "samples":
                raise OSError(errno.ENOSPC, "No space left on device")
            real(path, data)

        monkeypatch.setattr(store_mod, "write_atomic", always_full)
        with pytest.raises(StorageError, match="No space left"):
            store.put(sample())
        assert store.pending(10) == []  # everything older went to make room
        assert store.stats()["dropped"] == 2
    assert not list((tmp_path / "samples").glob(".*"))


def test_a_real_file_size_limit(tmp_path: Path) -> None:
    """RLIMIT_FSIZE makes the kernel refuse the write (EFBIG), as a full disk would: the
    store drops the older sample to make room, tries again, and when even that does not
    fit fails with StorageError, leaving no partial file behind."""
    script = textwrap.dedent(f"""
        import resource, signal, sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[3])!r})
        from edge.capture import SampleStore
        from edge.errors import StorageError
        from tests.edge.capture.samples_kit import sample
        small, big = sample("tabular"), sample("image")
        store = SampleStore(sys.argv[1], 1 << 20)
        store.put(small)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a signal
        resource.setrlimit(resource.RLIMIT_FSIZE, (200, 200))
        try:
            store.put(big)
        except StorageError as exc:
            print("refused", store.stats()["dropped"], store.stats()["pending"], exc)
        else:
            print("stored")
    """)
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    refused, dropped, pending, *why = proc.stdout.split()
    assert (refused, dropped, pending) == ("refused", "1", "0"), proc.stdout
    assert "File too large" in " ".join(why)
    # nothing half-written stays, and the store opens fine afterwards
    assert not [p for p in (tmp_path / "samples").iterdir() if p.name.startswith(".")]
    with SampleStore(tmp_path, 1 << 20) as store:
        assert store.pending(10) == []
