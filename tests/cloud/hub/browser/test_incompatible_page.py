"""The rollout page shows a device that can run none of the bundle's variants as
``incompatible``, with the hub's reason, apart from failed ones (issue 16).

The data goes through the real ingest path: one device reports that ONNX Runtime is not
installed (the bundle ships only an onnxruntime variant), the other can run it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from cloud.hub.http.auth import create_api_token
from tests.cloud.hub import helpers
from tests.cloud.hub.browser.bundles import make_bundle
from tests.cloud.hub.browser.conftest import HubServer, login, shot, wait_js
from tests.cloud.hub.helpers import feed

pytestmark = [pytest.mark.slow, pytest.mark.integration]

NO_ONNX = {"cores": 2, "runtimes": {
    "onnxruntime": {"available": False, "reason": "not installed (pip install onnxruntime)"},
    "litert": {"available": True, "version": "2.3.0", "package": "ai-edge-litert"},
}}  # fmt: skip
HAS_ONNX = {"cores": 2, "runtimes": {
    "onnxruntime": {"available": True, "version": "1.32.0", "package": "onnxruntime"},
}}  # fmt: skip


def test_an_incompatible_device_is_shown_with_its_reason(
    page: Any, hub_server: HubServer, tmp_path: Path
) -> None:
    app = hub_server.app
    with hub_server.session() as s:
        auth = {"Authorization": f"Bearer {create_api_token(s, 'operator', 'compat-page')}"}
        s.commit()
    client = app.test_client()
    for v in (1, 2):
        b = make_bundle(tmp_path / f"digits-{v}.ekb", hub_server.private_key, v)
        data = {"bundle": (io.BytesIO(b.read_bytes()), b.name)}
        assert client.post("/api/v1/models", headers=auth, data=data).status_code == 201
    feed(app, helpers.status("lite-only", version=1, capabilities=NO_ONNX),
         helpers.status("full", version=1, capabilities=HAS_ONNX))  # fmt: skip
    body = {"model": "digits", "version": 2, "target": {"all": True}, "waves": [100]}
    resp = client.post("/api/v1/rollouts", json=body, headers=auth)
    assert resp.status_code == 201, resp.get_json()
    rid = resp.get_json()["id"]
    shown = client.get(f"/api/v1/rollouts/{rid}", headers=auth).get_json()
    deps = {d["device"]: d for d in shown["deployments"]}
    assert deps["lite-only"]["status"] == "incompatible", deps
    assert "onnxruntime" in deps["lite-only"]["reason"]
    assert deps["full"]["status"] != "incompatible"

    login(page, hub_server, "ada")
    page.goto(f"{hub_server.url}/rollouts/{rid}")
    wait_js(page, "document.querySelectorAll('#deployments tbody tr[data-device]').length >= 2")
    row = page.locator('#deployments tbody tr[data-device="lite-only"]')
    text = row.inner_text()
    assert "incompatible" in text and "onnxruntime" in text, text
    assert "failed" not in page.locator('#deployments tbody tr[data-device="full"]').inner_text()
    assert "1 incompatible" in page.locator("#summary").inner_text()
    shot(page, "rollout-incompatible")
