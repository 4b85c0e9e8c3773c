"""Alembic environment: migrations run on the connection ``Database.migrate`` passes in.

From the command line: ``alembic -x url=sqlite:///hub.db upgrade head`` with
``script_location`` pointing here also works.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from cloud.hub.storage.db import normalize_url
from cloud.hub.storage.tables import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise SystemExit("give the database as: alembic -x url=DATABASE_URL upgrade head")
    if context.is_offline_mode():
        context.configure(url=normalize_url(url), target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(normalize_url(url))
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()


run()
