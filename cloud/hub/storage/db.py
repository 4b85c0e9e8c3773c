"""Engine, sessions and migrations. SQLite runs in WAL mode; ``postgresql://`` uses psycopg 3.

The schema is owned by Alembic (``cloud/hub/migrations``): ``Database.migrate()`` runs
``upgrade head`` programmatically at start-up, so every worker sees the same schema.

A SQLite file holds password hashes and the hub's own secrets: it is created 0600 before
SQLite opens it (SQLite gives its ``-wal`` and ``-shm`` files the same mode).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from edge.errors import ConfigError

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).with_name("migrations")
MIGRATE_LOCK = 0x6564676B6974  # "edgkit": the advisory lock key migrations take on PostgreSQL


def normalize_url(url: str) -> str:
    """Map plain ``postgresql://``/``postgres://`` onto the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if not url.startswith(("sqlite:", "postgresql+psycopg:")):
        raise ConfigError(f"unsupported database URL {url!r}: use sqlite:/// or postgresql://")
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def _private_file(database: str | None) -> None:
    """Create the SQLite file owner-only and take group/other bits off an existing one."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if p.exists() and p.stat().st_mode & 0o077:
                p.chmod(0o600)
    except OSError as exc:
        raise ConfigError(f"cannot create the database file {path}: {exc.strerror}") from exc


class Database:
    """One engine plus a session factory; thread-safe, shared by requests and workers."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        kwargs: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 10}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=10)
        try:
            self.engine: Engine = create_engine(self.url, **kwargs)
        except (ArgumentError, ImportError) as exc:
            raise ConfigError(f"bad database URL {url!r}: {exc}") from exc
        if self.is_sqlite:
            _private_file(self.engine.url.database)
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        s = self.sessions()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        try:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    # N hub processes starting together on one database would race in
                    # Alembic (the losers exit): one migrates, the others wait, then find
                    # the schema at head. Held until this transaction ends.
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATE_LOCK})
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except SQLAlchemyError as exc:
            raise ConfigError(f"cannot migrate database {self.safe_url}: {exc}") from exc

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()
