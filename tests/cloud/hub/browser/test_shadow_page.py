"""The rollout page of a shadow rollout: each device's agreement and the candidate's
latency (next to the served model's), the shadow gate in the gates table, and the setting.

The devices' ``shadow`` events go through the real ingest path; the hub's ticker turns
them into the deployments' reports and judges the gate (one device under the minimum).
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest

from cloud.hub.http.auth import create_api_token
from edge.contract import Event, encode_json, topic
from tests.cloud.hub import helpers
from tests.cloud.hub.browser.bundles import make_bundle
from tests.cloud.hub.browser.conftest import HubServer, login, shot, wait_js
from tests.cloud.hub.helpers import feed

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def shadow_event(device: str, rid: str, command: str, agreement: float, p95: float) -> Any:
    detail = {"inputs": 40, "wanted": 40, "agreement": agreement, "errors": 0,
              "candidate_latency_ms": {"p50": p95 / 2, "p95": p95},
              "served_latency_ms": {"p50": 0.5, "p95": 0.9}}  # fmt: skip
    e = Event(device, time.time(), 50, "deploy", "shadow run finished", "shadow", rid,
              command, 2, detail, "boot1")  # fmt: skip
    return topic(device, "events"), encode_json(e.to_dict())


def test_agreement_and_candidate_latency_per_device(
    page: Any, hub_server: HubServer, tmp_path: Path
) -> None:
    app = hub_server.app
    with hub_server.session() as s:
        auth = {"Authorization": f"Bearer {create_api_token(s, 'operator', 'shadow-page')}"}
        s.commit()
    client = app.test_client()
    for v in (1, 2):
        b = make_bundle(tmp_path / f"digits-{v}.ekb", hub_server.private_key, v)
        data = {"bundle": (io.BytesIO(b.read_bytes()), b.name)}
        assert client.post("/api/v1/models", headers=auth, data=data).status_code == 201
    feed(app, helpers.status("cam-a", version=1), helpers.status("cam-b", version=1))
    body = {"model": "digits", "version": 2, "target": {"all": True}, "waves": [100],
            "shadow": {"inputs": 40, "min_agreement": 0.85, "timeout": 60}}  # fmt: skip
    resp = client.post("/api/v1/rollouts", json=body, headers=auth)
    assert resp.status_code == 201, resp.get_json()
    rid = resp.get_json()["id"]
    shown = client.get(f"/api/v1/rollouts/{rid}", headers=auth).get_json()
    cmds = {d["device"]: d["command"] for d in shown["deployments"]}
    feed(app, shadow_event("cam-a", rid, cmds["cam-a"], 0.975, 3.2),
         shadow_event("cam-b", rid, cmds["cam-b"], 0.5, 4.6))  # fmt: skip
    app.extensions["edgekit_hub"].service.tick()

    login(page, hub_server, "ada")
    page.goto(f"{hub_server.url}/rollouts/{rid}")
    page.wait_for_selector("#state[data-state=paused]")
    a = page.locator('#deployments tr[data-device="cam-a"]')
    b = page.locator('#deployments tr[data-device="cam-b"]')
    wait_js(page, "document.querySelectorAll('#deployments td[data-col=agreement]').length === 2")
    assert a.locator("td[data-col=agreement]").inner_text() == "97.5 % of 40"
    assert b.locator("td[data-col=agreement]").inner_text() == "50.0 % of 40"
    assert "under-gate" in (b.locator("td[data-col=agreement]").get_attribute("class") or "")
    assert "under-gate" not in (a.locator("td[data-col=agreement]").get_attribute("class") or "")
    latency = a.locator("td[data-col=shadow-latency]").inner_text()
    assert latency == "1.60 ms / 3.20 ms (served 0.50 ms / 0.90 ms)", latency
    gate = page.locator('#gates tr[data-gate="shadow_agreement"]').inner_text()
    assert "shadow agreement" in gate and "50.00 %" in gate and "≥ 85.00 %" in gate, gate
    assert "fail" in gate
    spec = page.locator("#spec").inner_text()
    assert "40 live inputs per device, agreement ≥ 85.0 %, at most 60 s" in spec
    assert "shadow gate: cam-b agreed" in page.locator("#audit tbody").inner_text()
    shot(page, "rollout-shadow")
