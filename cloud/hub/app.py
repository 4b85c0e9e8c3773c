"""The Flask app factory. ``create_app(config)`` wires the database, blueprints and workers.

Blueprints: ``api`` (``/api/v1``), ``metrics`` (``/metrics``) and, when
``cloud.hub.web`` exists, the fleet web page. Background workers (MQTT bridge, rollout
ticker, telemetry compaction) start only when ``config.background`` is true, so tests and
one-off CLI commands get a quiet app.

For WSGI servers: ``waitress-serve --call cloud.hub.app:app_from_env`` or
``gunicorn 'cloud.hub.app:app_from_env()'`` (settings from ``EDGEKIT_HUB_*`` variables).
"""

from __future__ import annotations

import atexit
import importlib
import logging
from dataclasses import dataclass, field
from typing import Any

from flask import Flask, current_app, g, request
from sqlalchemy.orm import Session

from cloud.hub.config import HubConfig
from cloud.hub.db import Database

log = logging.getLogger(__name__)
WEB_MODULE = "cloud.hub.web"


@dataclass
class Hub:
    """Per-app services, reachable from routes via :func:`hub`."""

    config: HubConfig
    db: Database
    workers: list[Any] = field(default_factory=list)  # objects with .stop()
    bridge: Any = None  # MqttBridge when a broker is configured
    service: Any = None  # RolloutService

    def request_session(self) -> Session:
        """The request's session, opened lazily and closed at teardown."""
        if "db_session" not in g:
            g.db_session = self.db.sessions()
        return g.db_session

    def stop(self) -> None:
        for worker in reversed(self.workers):
            try:
                worker.stop()
            except Exception:
                log.exception("stopping %r failed", worker)
        self.workers.clear()


def hub() -> Hub:
    return current_app.extensions["edgekit_hub"]


def create_app(config: HubConfig | dict[str, Any] | None = None) -> Flask:
    """Build a hub app; migrates the database to the newest schema first."""
    cfg = config if isinstance(config, HubConfig) else HubConfig(**(config or {}))
    cfg.ensure_dirs()
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config.update(
        SECRET_KEY=cfg.session_secret(),
        MAX_CONTENT_LENGTH=cfg.max_upload_bytes,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        JSON_SORT_KEYS=False,
        TESTING=cfg.testing,
    )
    database = Database(cfg.database_url())
    database.migrate()
    from cloud.hub.rollout_service import RolloutService

    state = Hub(config=cfg, db=database)
    state.service = RolloutService(cfg, database)
    app.extensions["edgekit_hub"] = state

    from cloud.hub.auth import init_auth
    from cloud.hub.http_errors import register_error_handlers

    register_error_handlers(app)
    init_auth(app)

    @app.before_request
    def _learn_public_url() -> None:
        # Deploy commands carry absolute bundle URLs; without --public-url use the first
        # address a client reached us on.
        if cfg.public_url is None:
            cfg.public_url = request.host_url.rstrip("/")

    @app.teardown_appcontext
    def _close_session(exc: BaseException | None) -> None:
        s = g.pop("db_session", None)
        if s is None:
            return
        try:
            if exc is None:
                s.commit()
            else:
                s.rollback()
        finally:
            s.close()

    from cloud.hub.api import api
    from cloud.hub.metrics import metrics_bp

    app.register_blueprint(api)
    app.register_blueprint(metrics_bp)
    _register_web(app)

    if cfg.background:
        from cloud.hub.workers import start_workers

        start_workers(state)
        atexit.register(state.stop)
    return app


def _register_web(app: Flask) -> None:
    try:
        web = importlib.import_module(WEB_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != WEB_MODULE:
            raise
        log.info("no fleet web page installed (%s missing)", WEB_MODULE)
        return
    app.register_blueprint(web.bp)


def app_from_env() -> Flask:
    """WSGI entry point configured by ``EDGEKIT_HUB_*`` environment variables."""
    return create_app(HubConfig.from_env())
