"""The rollout form's shadow fields and its champion "force" checkbox: an operator asks for
a shadow run (inputs, minimum agreement, timeout), the hub's own checks speak through the
form, a clearly worse version needs "force", and the created rollout carries all of it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.hub.http.auth import create_api_token
from tests.bundles import make_bundle as make_onnx_bundle
from tests.cloud.hub import helpers
from tests.cloud.hub.browser.conftest import HubServer, login, shot, wait_js

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _upload(hub: HubServer, auth: dict[str, str], tmp: Path, version: int, acc: float) -> None:
    path = make_onnx_bundle(
        tmp / f"digits-{version}.ekb", hub.private_key, version=version, seed=version,
        golden_x=np.random.default_rng(0).uniform(0, 1, (16, 8, 8, 1)).astype(np.float32),
        metrics={"accuracy": acc}, lineage={"metrics": {"test_accuracy": acc}},
    )  # fmt: skip
    data = {"bundle": (io.BytesIO(path.read_bytes()), path.name)}
    assert hub.app.test_client().post("/api/v1/models", headers=auth, data=data).status_code == 201


def test_shadow_fields_and_force_make_the_rollout(
    page: Any, hub_server: HubServer, tmp_path: Path
) -> None:
    with hub_server.session() as s:
        auth = {"Authorization": f"Bearer {create_api_token(s, 'operator', 'form-shadow')}"}
        s.commit()
    _upload(hub_server, auth, tmp_path, 1, 0.95)
    _upload(hub_server, auth, tmp_path, 2, 0.20)  # clearly worse on its test metrics
    helpers.feed(hub_server.app, helpers.status("cam-1", version=1),
                 helpers.status("cam-2", version=1))  # fmt: skip

    login(page, hub_server, "olga")
    page.goto(f"{hub_server.url}/rollouts?model=digits&version=2")
    wait_js(page, "document.querySelector('#version')?.value === '2'")
    assert page.locator("#shadow-agreement").is_disabled()  # inputs 0: no shadow run
    page.check("#all")
    page.fill("#shadow-inputs", "40")
    assert page.locator("#shadow-agreement").is_enabled()
    page.fill("#shadow-agreement", "85")
    page.fill("#shadow-timeout", "1000")  # longer than the 900 s deploy timeout
    page.click("#create-button")
    wait_js(page, "document.querySelector('#form-error').textContent.includes('shorter')")
    assert "'shadow.timeout' (1000 s) must be shorter than deploy_timeout_s" in (
        page.locator("#form-error").inner_text()
    )
    page.fill("#shadow-inputs", "2.5")  # the browser's own check stops it before any request
    assert page.evaluate("document.querySelector('#shadow-inputs').validity.stepMismatch")

    page.fill("#shadow-inputs", "40")
    page.fill("#shadow-timeout", "60")
    page.click("#create-button")
    wait_js(page, "document.querySelector('#form-error').textContent.includes('champion')")
    assert "clearly worse" in page.locator("#form-error").inner_text()
    client = hub_server.app.test_client()
    assert client.get("/api/v1/rollouts", headers=auth).get_json() == []  # nothing made yet
    page.check("#force")
    shot(page, "rollout-form-shadow")
    page.click("#create-button")
    page.wait_for_url("**/rollouts/*")
    rid = page.url.rsplit("/", 1)[-1]

    r = client.get(f"/api/v1/rollouts/{rid}", headers=auth).get_json()
    assert r["spec"]["shadow"] == {"inputs": 40, "min_agreement": 0.85, "timeout": 60.0}
    assert r["champion"]["decision"] == "worse" and r["champion"]["forced"] is True
    assert r["champion"]["actor"] == "olga"
    wait_js(page, "document.querySelector('#spec')?.textContent.includes('live inputs')")
    spec = page.locator("#spec").inner_text()
    assert "40 live inputs per device, agreement ≥ 85.0 %, at most 60 s" in spec
    wait_js(page, "document.querySelector('#audit tbody').textContent.includes('overridden')")
