"""A throw-away PostgreSQL schema on the machine's server, for hub tests that need a real
PostgreSQL rather than SQLite. The test is skipped when no server answers."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from tests.services import need_service

PG = "postgresql://postgres@127.0.0.1:5432/test"


@contextlib.contextmanager
def throwaway_schema(prefix: str) -> Iterator[str]:
    """Create ``<prefix>_<random>`` and yield a hub database URL whose ``search_path``
    selects it; the schema and everything in it are dropped afterwards."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        conn = psycopg.connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=test", autocommit=True
        )
    except psycopg.OperationalError:
        need_service(False, "no PostgreSQL on 127.0.0.1:5432")
    conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()
