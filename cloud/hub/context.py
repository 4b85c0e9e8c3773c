"""The hub's per-app services, reachable from any route or worker through :func:`hub`.

This module imports no other hub module (only types, for the checker), so every layer can
use it without an import cycle: routes, workers and the web page all start here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from flask import current_app, g
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from cloud.hub.config import HubConfig
    from cloud.hub.ingest import MqttBridge
    from cloud.hub.rollout import RolloutService
    from cloud.hub.storage import Database

log = logging.getLogger(__name__)
EXTENSION = "edgekit_hub"


class Worker(Protocol):
    """A background worker the hub stops on shutdown."""

    def stop(self) -> None: ...


@dataclass
class Hub:
    """Per-app services: config, database, rollout service and, with a broker, the bridge."""

    config: HubConfig
    db: Database
    service: RolloutService
    workers: list[Worker] = field(default_factory=list)
    bridge: MqttBridge | None = None  # set when a broker is configured

    def request_session(self) -> Session:
        """The request's session, opened lazily and closed at teardown."""
        if "db_session" not in g:
            g.db_session = self.db.sessions()
        session: Session = g.db_session
        return session

    def stop(self) -> None:
        for worker in reversed(self.workers):
            try:
                worker.stop()
            except Exception:
                log.exception("stopping %r failed", worker)
        self.workers.clear()


def hub() -> Hub:
    """The current app's :class:`Hub`."""
    state: Hub = current_app.extensions[EXTENSION]
    return state


def db() -> Session:
    """The current request's database session."""
    return hub().request_session()
