"""The Flask app factory. ``create_app(config)`` wires the database, blueprints and workers.

Blueprints: ``api`` (``/api/v1``), ``metrics`` (``/metrics``) and, when
``cloud.hub.web`` exists, the fleet web page. Background workers (MQTT bridge, rollout
ticker, telemetry compaction) start only when ``config.background`` is true, so tests and
one-off CLI commands get a quiet app.

For WSGI servers: ``waitress-serve --call cloud.hub.app:app_from_env`` or
``gunicorn 'cloud.hub.app:app_from_env()'`` (settings from ``EDGEKIT_HUB_*`` variables).
Set ``EDGEKIT_HUB_PUBLIC_URL`` there: the hub never takes its own address from a request's
``Host`` header (a forged one would decide where devices fetch bundles from).
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
from typing import Any

from flask import Flask, g

from cloud.hub.config import HubConfig
from cloud.hub.context import EXTENSION, Hub
from cloud.hub.http import api, hardening, metrics_bp, register_error_handlers
from cloud.hub.http.auth import init_auth
from cloud.hub.rollout import RolloutService
from cloud.hub.storage import Database
from cloud.hub.workers import start_workers

log = logging.getLogger(__name__)
WEB_MODULE = "cloud.hub.web"


def create_app(config: HubConfig | dict[str, Any] | None = None) -> Flask:
    """Build a hub app; migrates the database to the newest schema first."""
    cfg = config if isinstance(config, HubConfig) else HubConfig(**(config or {}))
    cfg.ensure_dirs()
    _private_dir(cfg)
    app = Flask(__name__, static_folder="web/static", template_folder="web/templates")
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
    state = Hub(config=cfg, db=database, service=RolloutService(cfg, database))
    app.extensions[EXTENSION] = state

    register_error_handlers(app)
    hardening.install(app, max_body=cfg.max_body_bytes, max_upload=cfg.max_upload_bytes)
    init_auth(app)
    if cfg.public_url is None and cfg.broker_url is not None:
        log.warning(
            "no public URL configured (--public-url / EDGEKIT_HUB_PUBLIC_URL): deploy "
            "commands will name http://127.0.0.1 as the bundle server"
        )

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

    app.register_blueprint(api)
    app.register_blueprint(metrics_bp)
    _register_web(app)

    if cfg.background:
        start_workers(state)
        atexit.register(state.stop)
    return app


def _private_dir(cfg: HubConfig) -> None:
    """The data dir holds the database, bundles and the session key: no one else may read
    it (best effort on a directory the hub does not own)."""
    try:
        mode = cfg.data_dir.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(cfg.data_dir, mode & 0o700)
    except OSError as exc:
        log.warning("cannot make %s private: %s", cfg.data_dir, exc)


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
