"""The champion check on the pages: the models page shows the bad v3 as clearly worse than
v2 with the comparison table; the rollout form refuses it until "force" is ticked, and
the rollout page then shows the check, forced, and the audit log records it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from cloud.hub.http.auth import create_api_token
from tests.cloud.hub import helpers
from tests.cloud.hub.browser.conftest import HubServer, login, shot, wait_js
from tests.cloud.hub.champion import field
from tests.cloud.hub.champion.conftest import Digits, digits

__all__ = ["digits"]
pytestmark = [pytest.mark.slow, pytest.mark.integration]


def test_worse_version_is_shown_and_needs_force(
    page: Any, hub_server: HubServer, digits: Digits, tmp_path: Path
) -> None:
    app = hub_server.app
    with hub_server.session() as s:
        auth = {"Authorization": f"Bearer {create_api_token(s, 'operator', 'champion-page')}"}
        s.commit()
    client = app.test_client()
    for v in (2, 3):
        w, b = digits.weights[v]
        path = field.bundle(tmp_path / f"digits-{v}.ekb", hub_server.private_key, v, w, b,
                            digits.test_accuracy[v])  # fmt: skip
        data = {"bundle": (io.BytesIO(path.read_bytes()), path.name)}
        assert client.post("/api/v1/models", headers=auth, data=data).status_code == 201
        if v == 2:
            helpers.feed(
                app, helpers.status("cam-1", version=2), helpers.status("cam-2", version=2)
            )

    login(page, hub_server, "olga")
    page.goto(f"{hub_server.url}/models#digits%403")
    wait_js(page, "document.querySelector('#champion [data-testid=champion-decision]')"
                  "?.textContent === 'worse'")  # fmt: skip
    assert "v2" in page.locator("#champion").inner_text()
    table = page.locator("#champion [data-testid=champion-table]").inner_text()
    assert "Own test accuracy\t10.7 %\t94.1 %" in table and "candidate v3" in table.lower()
    assert "worse" in page.locator('#versions tr[data-model="digits@3"]').inner_text()
    shot(page, "models-champion-worse")

    page.goto(f"{hub_server.url}/rollouts?model=digits&version=3")
    wait_js(page, "document.querySelector('#version')?.value === '3'")
    page.check("#all")
    page.click("#create-button")
    wait_js(page, "document.querySelector('#form-error').textContent.includes('champion')")
    assert "clearly worse" in page.locator("#form-error").inner_text()
    page.check("#force")
    page.click("#create-button")
    page.wait_for_url("**/rollouts/*")
    wait_js(page, "!document.querySelector('#champion-panel').hidden")
    panel = page.locator("#champion-panel").inner_text()
    assert "worse" in panel and "forced" in panel
    wait_js(page, "document.querySelector('#audit tbody').textContent.includes('overridden')")
    shot(page, "rollout-champion-forced")
