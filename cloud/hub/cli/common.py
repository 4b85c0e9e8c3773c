"""What every ``edgekit hub`` command shares: the database named by ``--db``/``--data-dir``."""

from __future__ import annotations

import argparse
from typing import Any


def database(args: argparse.Namespace) -> Any:
    from cloud.hub.config import HubConfig, default_data_dir
    from cloud.hub.storage import Database

    cfg = HubConfig(data_dir=args.data_dir or default_data_dir(), db_url=args.db)
    cfg.ensure_dirs()
    db = Database(cfg.database_url())
    db.migrate()
    return db
