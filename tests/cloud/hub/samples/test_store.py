"""The sample store's Python face (what datasets build on), retention, a full disk, and
the migration matching the tables."""

from __future__ import annotations

import errno
import time
from pathlib import Path
from typing import Any

import pytest

from cloud.errors import HubError
from cloud.hub.samples import (
    SampleFilter,
    enforce_retention,
    query_samples,
    sample_file,
    set_labels,
    store_batch,
)
from cloud.hub.samples import store as store_module
from cloud.hub.storage import Database, SampleRecord
from edge.contract import SampleBatch
from tests.cloud.hub.samples.factory import array_input, sample, tabular_input


@pytest.fixture
def db(tmp_path: Path) -> Any:
    database = Database(f"sqlite:///{tmp_path / 'hub.db'}")
    database.migrate()
    yield database
    database.dispose()


def put(db: Any, root: Path, device: str, *samples: Any, now: float | None = None) -> Any:
    with db.session() as s:
        return store_batch(
            s, root, SampleBatch(device, tuple(samples)), [], rate_per_minute=10_000, now=now
        )


def test_filter_from_query_strings_and_json() -> None:
    q = SampleFilter.from_args({"device": "cam-1", "version": "3", "labeled": "false", "model": ""})
    assert q == SampleFilter(device="cam-1", version=3, labeled=False)
    j = SampleFilter.from_args({"version": 3, "labeled": True, "reason": "drift", "label": "7"})
    assert j.to_dict() == {"version": 3, "reason": "drift", "label": "7", "labeled": True}
    assert SampleFilter.from_args(j.to_dict()) == j  # what a dataset version records
    for bad in (
        {"version": 0},
        {"version": True},
        {"labeled": "sometimes"},
        {"reason": "boredom"},
        {"device": "../x"},
        {"label": "x" * 300},
        {"lable": "7"},
    ):
        with pytest.raises(HubError) as exc:
            SampleFilter.from_args(bad)
        assert exc.value.status == 400


def test_query_samples_and_files(db: Any, tmp_path: Path) -> None:
    root = tmp_path / "data" / "samples"
    a = sample(label="7", captured_at=100.0)
    b = sample(array_input(), label="1", captured_at=50.0, reason="drift")
    c = sample(tabular_input(), label="setosa", model="iris", version=1, captured_at=75.0)
    put(db, root, "cam-1", a, b)
    put(db, root, "iris-1", c)
    with db.session() as s:
        rows = query_samples(s, SampleFilter())
        assert [r.id for r in rows] == [b.id, c.id, a.id]  # oldest capture first
        set_labels(s, {a.id: "7", c.id: "versicolor"}, "olga")
        labeled = query_samples(s, SampleFilter(labeled=True))
        assert [(r.id, r.label, r.labeled_by) for r in labeled] == [
            (c.id, "versicolor", "olga"),
            (a.id, "7", "olga"),
        ]
        row = query_samples(s, SampleFilter(device="cam-1", reason="drift"))[0]
        assert query_samples(s, SampleFilter(model="iris"))[0].features == c.input.features
        assert query_samples(s, SampleFilter(), limit=1, offset=2)[0].id == a.id
    assert row.model_name == "digits" and row.model_version == 2 and row.predicted == "1"
    assert row.kind == "array" and row.array == {"dtype": "float32", "shape": [8, 8, 1]}
    path = sample_file(tmp_path / "data", row)
    assert path == root / "cam-1" / f"{b.id}.npy" and path.read_bytes() == b.input.data
    import hashlib

    assert row.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and row.size == len(
        b.input.data
    )


def test_retention_age_count_and_orphans(db: Any, tmp_path: Path) -> None:
    root = tmp_path / "samples"
    now = time.time()
    old = [sample() for _ in range(3)]
    put(db, root, "cam-1", *old, now=now - 40 * 86400)
    fresh = [sample() for _ in range(4)]
    for i, f in enumerate(fresh):
        put(db, root, "cam-1", f, now=now - 60 + i)
    with db.session() as s:
        set_labels(s, {old[0].id: "7"}, "olga")  # a labeled sample outlives the max age
    orphan = root / "cam-1" / ("e" * 32 + ".png")
    orphan.write_bytes(b"left behind by a crash")
    young_orphan = root / "cam-1" / ("d" * 32 + ".png")
    young_orphan.write_bytes(b"an upload in flight")
    import os

    os.utime(orphan, (now - 7200, now - 7200))
    with db.session() as s:
        done = enforce_retention(s, root, max_age_s=30 * 86400, max_count=4, now=now)
    # 2 unlabeled expired; of the 5 left, the oldest unlabeled goes (the labeled one stays)
    assert (done.expired, done.over_count, done.orphans) == (2, 1, 1)
    with db.session() as s:
        left = {r.id for r in s.query(SampleRecord)}
    assert left == {old[0].id, *[f.id for f in fresh[1:]]}
    files = {p.name.split(".")[0] for p in (root / "cam-1").iterdir()}
    assert files == left | {"d" * 32} and not orphan.exists()
    with db.session() as s:  # over the count with only labeled samples: they go too
        set_labels(s, dict.fromkeys(left, "1"), "olga")
        assert enforce_retention(s, root, max_age_s=1, max_count=1, now=now).over_count == 3
        assert {r.id for r in s.query(SampleRecord)} == {fresh[3].id}


def test_a_full_disk_is_a_503_and_nothing_half_stored(
    db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module, "write_atomic", full)
    with pytest.raises(HubError) as exc:
        put(db, tmp_path, "cam-1", sample(), sample())
    assert exc.value.status == 503 and "No space left" in exc.value.message
    with db.session() as s:
        assert s.query(SampleRecord).count() == 0  # the device keeps them and retries


def test_migration_matches_the_tables(db: Any) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from cloud.hub.storage.tables import Base

    mine = ("samples", "sample_labels")

    def include(obj: Any, name: str | None, kind: str, reflected: bool, other: Any) -> bool:
        table = name if kind == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in mine

    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include})
        assert compare_metadata(context, Base.metadata) == []
