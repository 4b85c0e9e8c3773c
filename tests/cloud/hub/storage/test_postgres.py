"""Migrations and the API on the machine's PostgreSQL, in a throw-away schema."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud.hub.app import create_app
from cloud.hub.config import HubConfig
from cloud.hub.http.auth import create_api_token
from cloud.hub.storage import Database
from cloud.hub.storage.db import normalize_url
from tests.cloud.hub import helpers
from tests.cloud.hub.helpers import feed
from tests.cloud.hub.pg_schema import PG, throwaway_schema

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_url() -> Iterator[str]:
    with throwaway_schema("hub") as url:
        yield url


def test_url_mapping() -> None:
    assert normalize_url(PG).startswith("postgresql+psycopg://")
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"


def _head() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from cloud.hub.storage.db import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert head is not None
    return head


def test_migrations_are_idempotent(pg_url: str) -> None:
    db = Database(pg_url)
    db.migrate()
    db.migrate()
    with db.engine.connect() as conn:
        version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    assert version == _head()  # the newest revision in cloud/hub/storage/migrations/versions
    db.dispose()


def test_processes_migrating_one_fresh_database_at_once_all_start(pg_url: str) -> None:
    """N hub processes starting together (gunicorn -w N): without the advisory lock the
    losers of Alembic's race exited (duplicate tables, 'Worker failed to boot')."""
    import threading

    errors: list[BaseException] = []
    dbs = [Database(pg_url) for _ in range(4)]
    start = threading.Barrier(len(dbs))

    def migrate(db: Database) -> None:
        start.wait()
        try:
            db.migrate()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=migrate, args=(db,)) for db in dbs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    with dbs[0].engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == _head()
    for db in dbs:
        db.dispose()


def test_api_on_postgres(pg_url: str, tmp_path: Path, keys: Any, make_bundle: Any) -> None:
    app = create_app(
        HubConfig(data_dir=tmp_path, db_url=pg_url, trusted_key=keys[1], background=False)
    )
    hub = app.extensions["edgekit_hub"]
    try:
        with hub.db.session() as s:
            h = {"Authorization": f"Bearer {create_api_token(s, 'admin')}"}
        c = app.test_client()
        path = make_bundle(1)
        resp = c.post(
            "/api/v1/models", headers=h, data={"bundle": (io.BytesIO(path.read_bytes()), "b")}
        )
        assert resp.status_code == 201
        assert (
            c.post(
                "/api/v1/models", headers=h, data={"bundle": (io.BytesIO(path.read_bytes()), "b")}
            ).status_code
            == 409
        )
        feed(
            app,
            helpers.status("pg-1"),
            helpers.telemetry("pg-1", seq=2),
            helpers.telemetry("pg-1", seq=3),
        )
        devices = c.get("/api/v1/devices", headers=h).get_json()
        assert devices[0]["model"] == {
            "name": "digits",
            "version": 1,
            "runtime": "onnxruntime",
            "precision": "fp32",
        }
        minute = c.get("/api/v1/devices/pg-1/telemetry?resolution=minute", headers=h).get_json()
        assert sum(p["inferences"] for p in minute["points"]) == 100
        body = {"model": "digits", "version": 1, "target": {"all": True}}
        rid = c.post("/api/v1/rollouts", json=body, headers=h).get_json()["id"]
        r = c.get(f"/api/v1/rollouts/{rid}", headers=h).get_json()
        assert r["state"] == "completed" or r["deployments"][0]["status"] == "current"
        assert c.delete("/api/v1/models/digits/1", headers=h).status_code == 409
        assert (
            c.get("/api/v1/models/digits/1/telemetry", headers=h).get_json()["summary"][
                "inferences"
            ]
            == 100
        )
    finally:
        hub.db.dispose()


def test_minute_aggregates_merge_across_batches_on_postgres(pg_url: str) -> None:
    """The minute upsert (ON CONFLICT ... DO UPDATE computed by the database) on
    PostgreSQL: sums, NULL-aware maximum, mean weighted by samples, NULL not diluting."""
    from cloud.hub.ingest.telemetry_store import write_batch
    from cloud.hub.storage import TelemetryMinute
    from tests.cloud.hub.ingest.test_telemetry_store import MINUTE, tel

    db = Database(pg_url)
    db.migrate()
    with db.session() as s:
        write_batch(s, [tel("d1", 1, MINUTE + 1, latency_ms={"p50": 1.0, "p95": 2.0}),
                        tel("d1", 2, MINUTE + 2, latency_ms={"p50": 3.0, "p95": 7.0})])  # fmt: skip
    with db.session() as s:
        write_batch(s, [tel("d1", 3, MINUTE + 3, latency_ms={"p50": 5.0, "p95": 4.0},
                            inferences=10, confidence_mean=None)])  # fmt: skip
    with db.session() as s:
        m = s.query(TelemetryMinute).filter_by(device_id="d1", minute=MINUTE).one()
    assert m.samples == 3 and m.inferences == 110 and m.errors == 3
    assert m.latency_p95 == 7.0 and m.latency_p50 == pytest.approx(3.0)
    assert m.confidence == pytest.approx(0.9) and m.drift == pytest.approx(0.05)


def test_one_enrollment_token_enrolls_one_device_under_a_race(
    pg_url: str, tmp_path: Path, keys: Any
) -> None:
    import threading

    from cloud.hub.http.auth import create_enrollment_token

    app = create_app(
        HubConfig(data_dir=tmp_path / "hub", db_url=pg_url, trusted_key=keys[1],
                  background=False, testing=True)
    )  # fmt: skip
    hub = app.extensions["edgekit_hub"]
    try:
        with hub.db.session() as s:
            token = create_enrollment_token(s, [], 3600.0)
        start = threading.Barrier(8)
        codes: list[int] = []

        def enroll(i: int) -> None:
            client = app.test_client()
            start.wait()
            resp = client.post("/api/v1/enroll", json={"token": token, "device": f"race-{i}"})
            codes.append(resp.status_code)

        threads = [threading.Thread(target=enroll, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(codes) == [200] + [401] * 7, codes
        with hub.db.session() as s:
            from sqlalchemy import func, select

            from cloud.hub.storage import Device

            enrolled = s.scalar(select(func.count()).select_from(Device).where(Device.enrolled))
            assert enrolled == 1
    finally:
        hub.stop()
        hub.db.dispose()
