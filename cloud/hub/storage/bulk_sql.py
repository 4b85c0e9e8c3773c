"""Bulk statements on the hot ingest path, straight to the driver's ``executemany``.

SQLAlchemy's per-row parameter processing (bind processors, JSON encoding, dict
construction) cost the telemetry writer more than SQLite itself, so the writer hands the
driver plain tuples on the session's own connection (same transaction). Statements are
written once with ``?`` placeholders and adapted to the driver: sqlite3 (qmark) and
psycopg 3 (``%s``) — the two databases the hub supports (``db.normalize_url``). JSON
columns take text: psycopg passes a ``str`` as an untyped literal, which PostgreSQL casts
to ``json``; SQLite stores it as SQLAlchemy's JSON type would.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from edge.errors import ConfigError

_MARKS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def executemany(db: Session, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """Run ``sql`` (``?`` placeholders; none inside literals) once per row."""
    if not rows:
        return
    conn = db.connection()
    mark = _MARKS.get(conn.dialect.paramstyle)
    if mark is None:
        raise ConfigError(f"the hub has no bulk path for paramstyle {conn.dialect.paramstyle}")
    conn.exec_driver_sql(sql if mark == "?" else sql.replace("?", mark), list(rows))


def null_safe_equal(db: Session, column: str) -> str:
    """``column`` equals a parameter, NULL equal to NULL (``IS`` on SQLite < 3.39 too)."""
    if db.connection().dialect.name == "sqlite":
        return f"{column} IS ?"
    return f"{column} IS NOT DISTINCT FROM ?"


def insert_sql(table: str, columns: Sequence[str]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def update_sql(table: str, columns: Sequence[str], where: str) -> str:
    return f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in columns)} WHERE {where}"


def json_text(value: Any) -> str:
    """A JSON column value as text (compact, NaN refused like the wire contract)."""
    return json.dumps(value, separators=(",", ":"), allow_nan=False)
