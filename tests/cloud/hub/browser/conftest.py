"""Fixtures for the fleet web page tests: a real hub on a free port and the system Chromium.

The hub runs in a thread of the test process (werkzeug's threaded server) on a temporary
SQLite database, so tests can seed rows directly and watch the page pick them up live.
Screenshots go to test-artifacts/screenshots/ (kept by CI as artifacts).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.services import need_service

CHROMIUM = Path(os.environ.get("EDGEKIT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[4] / "test-artifacts" / "screenshots"
PASSWORD = "correct-horse-1"
USERS = {"ada": "admin", "olga": "operator", "vic": "viewer"}

need_service(
    CHROMIUM.exists(),
    f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)",
    module_level=True,
)


@dataclass
class HubServer:
    url: str
    app: Any
    data_dir: Path
    private_key: Path
    public_key: Path

    def session(self) -> Any:
        """A database session on the hub's own database (commit to make rows visible)."""
        return self.app.extensions["edgekit_hub"].db.session()


def start_server(app: Any) -> tuple[str, Any, threading.Thread]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hub-http", daemon=True)
    thread.start()
    return f"http://127.0.0.1:{server.server_port}", server, thread


def make_hub(tmp: Path, **config: Any) -> tuple[HubServer, Any]:
    from cloud.hub.app import create_app
    from cloud.hub.http.auth import create_user
    from cloud.keys import generate_keypair

    private_key, public_key = generate_keypair(tmp / "keys")
    cfg = {"data_dir": tmp / "hub", "trusted_key": public_key, "background": False}
    cfg.update(config)
    app = create_app(cfg)
    with app.extensions["edgekit_hub"].db.session() as db:
        for name, role in USERS.items():
            create_user(db, name, PASSWORD, role)
    url, server, _thread = start_server(app)
    return HubServer(url, app, tmp / "hub", private_key, public_key), server


@pytest.fixture
def hub_server(tmp_path: Path) -> Iterator[HubServer]:
    hub, server = make_hub(tmp_path)
    try:
        yield hub
    finally:
        server.shutdown()
        hub.app.extensions["edgekit_hub"].stop()
        hub.app.extensions["edgekit_hub"].db.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("dialog", lambda dialog: dialog.accept())
    pg.js_errors = errors
    try:
        yield pg
    finally:
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            shot(pg, f"FAILED-{request.node.name}")
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep


def shot(page: Any, name: str, full_page: bool = True) -> Path:
    """Save a screenshot as a test artifact and return its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def login(page: Any, hub: HubServer, user: str, password: str = PASSWORD) -> None:
    page.goto(f"{hub.url}/login")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=username]")


def wait_js(page: Any, expression: str, timeout: float = 30_000) -> Any:
    """Poll a JavaScript expression until it is truthy. Playwright's ``wait_for_function``
    polls by ``eval`` inside the page, which the hub's Content-Security-Policy forbids (as
    it should); ``page.evaluate`` runs through the DevTools protocol instead."""
    return wait_until(lambda: page.evaluate(expression), timeout=timeout / 1000.0)


def wait_until(predicate: Any, timeout: float = 20.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)
