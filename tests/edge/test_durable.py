"""Durable writes: whole-or-nothing replacement, private mode, no debris on failure."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from edge.durable import fsync_dir, write_atomic


def test_write_atomic_replaces_and_is_private(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_write_atomic_failure_leaves_old_file_and_no_debris(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomic(target, "not bytes")  # type: ignore[arg-type]
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_fsync_dir_tolerates_missing_directory(tmp_path: Path) -> None:
    fsync_dir(tmp_path)
    fsync_dir(tmp_path / "missing")  # nothing to make durable: no error
