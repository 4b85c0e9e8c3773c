"""The page reads well on a laptop and a phone (issue 15): no page wider than the window at
1280×800 or 390×844, the device timeline in words with the raw event behind a toggle, the
rollout page naming why each device failed, and a one-line "uploaded" cell.

The data goes through the hub's real ingest path (the MQTT bridge's parse + batch write)
and the real rollout service: agents' status, telemetry and events as they send them.
"""

from __future__ import annotations

import io
import json
import re
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

LONG = "warehouse-7-north-dock-conveyor-camera-0042-rev-b-9f8e7d6c5b4a39281706f5e4d3c2b1a0"
DEVICES = (LONG, "cam-1", "cam-2")
REASON = "mean confidence 0.104 dropped more than 0.2 below 0.991"
VIEWPORTS = {"laptop": (1280, 800), "phone": (390, 844)}


def _event(device: str, seq: int, kind: str, message: str, step: str | None = None,
           version: int | None = None, detail: dict[str, Any] | None = None,
           rollout: str | None = None, command: str | None = None,
           ) -> tuple[str, bytes]:  # fmt: skip
    e = Event(device, time.time() - 600 + seq, seq, kind, message, step, rollout, command,
              version, detail or {}, "boot1")  # fmt: skip
    return topic(device, "events"), encode_json(e.to_dict())


def history(device: str) -> list[tuple[str, bytes]]:
    """Every kind of event the agent emits, with its detail as edge/install sends it."""
    variant = {"runtime": "onnxruntime", "precision": "fp32", "status": "ok", "runs": 20,
               "top1_agreement": 1.0, "mean_abs_error": 0.0, "latency_ms": 12.0}  # fmt: skip
    sha = "9f8e7d6c5b4a39281706f5e4d3c2b1a0" * 2
    steps: list[tuple[str, str, str | None, int | None, dict[str, Any]]] = [
        ("deploy", "bundle downloaded", "downloading", 2, {"bytes": 1_234_567, "seconds": 0.41}),
        ("deploy", "bundle verified", "verifying", 2, {"name": "digits"}),
        ("deploy", "self-test passed; chose onnxruntime-fp32", "self_test", 2,
         {"variant": variant, "selftest": {"variants": [variant], "chosen": "onnxruntime-fp32",
                                           "pinned": False}, "bundle_sha256": sha}),
        ("deploy", "shadow run finished", "shadow", 2,
         {"inputs": 50, "wanted": 50, "agreement": 0.98, "errors": 0, "candidate_latency_ms": 1.2}),
        ("deploy", "activated digits-2", "activating", 2, variant),
        ("deploy", "probation passed", "probation", 2,
         {"seconds": 30, "inferences": 120, "errors": 0, "error_rate": 0.0, "p95_ms": 2.1,
          "confidence_mean": 0.991}),
        ("deploy", "committed digits-2", "committed", 2, {}),
        ("deploy", "refused: command expired", "failed", 4,
         {"failed_step": "verifying", "reason": "command expired"}),
        ("deploy", "self_test failed: no variant passed its self-test", "failed", 5,
         {"failed_step": "self_test", "reason": "no variant passed its self-test"}),
        ("rollback", "rolled back to digits-1", "rolled_back", 1,
         {"reason": "commanded", "restored": "digits-1", "restored_version": 1}),
        ("rollback", "fell back to digits-1: error rate 0.62", "rolled_back", 1,
         {"reason": "error_rate", "error_rate": 0.62, "from": "digits-2", "restored": "digits-1"}),
        ("rollback", "rollback refused: version 7 was never committed here", "failed", 7,
         {"failed_step": "verifying", "reason": "version 7 was never committed here"}),
        ("alert", "drift alert: input mean moved (PSI 0.41 > 0.2)", None, None,
         {"drift": {"alert_on": ["mean"], "input_psi": 0.41,
                    "features": {f"f{i}": 0.3 for i in range(40)}}}),
        ("info", "drift alert cleared", None, None, {"drift": {"input_psi": 0.05}}),
        ("info", "pong", None, None, {"uptime_s": 3600.4}),
        ("info", "config applied", None, None,
         {"config": {"telemetry_interval": 5, "drift_threshold": 0.25}}),
        ("error", "command refused: bad signature", None, None,
         {"reason": "signature", "message": "bad signature"}),
        ("reboot", "the agent restarted after a power cut", "warming_up", None, {"x": sha * 4}),
    ]  # fmt: skip
    return [
        _event(device, 100 + i, kind, msg, step, version, detail)
        for i, (kind, msg, step, version, detail) in enumerate(steps)
    ]


@pytest.fixture
def fleet(hub_server: HubServer, tmp_path: Path) -> dict[str, Any]:
    """Three devices on v2 (one with a 90-character id), a long history of events on it, and
    a rollout of a bad v3 that their probation rolls back, ending rolled back."""
    app = hub_server.app
    with hub_server.session() as s:
        auth = {"Authorization": f"Bearer {create_api_token(s, 'operator', 'layout-test')}"}
        s.commit()
    client = app.test_client()
    for v in (2, 3):
        b = make_bundle(tmp_path / f"digits-{v}.ekb", hub_server.private_key, v)
        data = {"bundle": (io.BytesIO(b.read_bytes()), b.name)}
        assert client.post("/api/v1/models", headers=auth, data=data).status_code == 201
    feed(app, *[helpers.status(d, version=2) for d in DEVICES])
    feed(app, *[helpers.telemetry(d, seq=i, version=2, ts=time.time() - 10 * (30 - i))
                for d in DEVICES for i in range(30)])  # fmt: skip
    feed(app, *history(LONG))
    body = {"model": "digits", "version": 3, "target": {"all": True}, "waves": [100],
            "error_threshold": 0.0, "error_action": "rollback"}  # fmt: skip
    resp = client.post("/api/v1/rollouts", json=body, headers=auth)
    assert resp.status_code == 201, resp.get_json()
    rid = resp.get_json()["id"]
    deps = client.get(f"/api/v1/rollouts/{rid}", headers=auth).get_json()["deployments"]
    detail = {"failed_step": "probation", "reason": REASON, "restored": "digits-2",
              "restored_version": 2}  # fmt: skip
    feed(app, *[_event(d["device"], 200, "rollback", f"rolled back: {REASON}", "rolled_back", 3,
                       detail, rid, d["command"]) for d in deps if d["device"] != "cam-2"],
         *[helpers.status(d, version=2, seq=5) for d in DEVICES])  # fmt: skip
    app.extensions["edgekit_hub"].service.tick()
    app.extensions["edgekit_hub"].service.tick()
    r = client.get(f"/api/v1/rollouts/{rid}", headers=auth).get_json()
    assert r["state"] == "rolled_back", r["audit"]
    return {"rollout": rid}


def _wait_loaded(page: Any, path: str) -> None:
    ready = {
        "/": "document.querySelectorAll('#fleet tbody tr[data-device]').length >= 3",
        "/devices/": "document.querySelectorAll('#events li.event').length >= 10",
        "/models": "!document.querySelector('#detail').hidden && "
                   "document.querySelectorAll('#variants tbody tr').length > 0",
        "/rollouts/": "document.querySelectorAll('#deployments tbody tr[data-device]').length >= 3",
        "/rollouts": "document.querySelector('#rollouts tbody tr') !== null",
        "/users": "document.querySelector('#users tbody tr') !== null",
    }  # fmt: skip
    key = next(k for k in ready if path.startswith(k) and (k != "/" or path in ("/", "/#")))
    wait_js(page, ready[key])
    page.wait_for_timeout(300)  # let charts and late layout settle (fonts, polling redraws)


def overflow(page: Any) -> dict[str, Any]:
    """How much wider than the window the page is, and the widest culprits."""
    return dict(
        page.evaluate("""() => {
      const w = window.innerWidth, sw = document.documentElement.scrollWidth;
      const wide = [...document.querySelectorAll('body *')]
        .filter((el) => el.getBoundingClientRect().right > w + 0.5
                && !el.closest('.table-wrap, .timeline, pre, .nav'))
        .slice(0, 5).map((el) => `${el.tagName}.${el.className}#${el.id}`);
      return { scrollWidth: sw, innerWidth: w, wide };
    }""")
    )


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_no_page_is_wider_than_the_window(
    page: Any, hub_server: HubServer, fleet: dict[str, Any], viewport: str
) -> None:
    width, height = VIEWPORTS[viewport]
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{hub_server.url}/login")
    page.wait_for_selector("#password")
    o = overflow(page)
    assert o["scrollWidth"] <= o["innerWidth"], ("/login", o)
    login(page, hub_server, "ada")
    paths = ["/", f"/devices/{LONG}", "/models#digits%403", "/rollouts",
             f"/rollouts/{fleet['rollout']}", "/users"]  # fmt: skip
    for i, path in enumerate(paths):
        page.goto(f"{hub_server.url}{path}")
        _wait_loaded(page, path.split("#")[0] if path.startswith("/models") else path)
        o = overflow(page)
        name = path.strip("/").split("/")[0].split("#")[0] or "overview"
        shot(page, f"layout-{viewport}-{i}-{name}")
        assert o["scrollWidth"] <= o["innerWidth"], (path, o)


def test_the_timeline_reads_in_words_with_the_raw_event_behind_a_toggle(
    page: Any, hub_server: HubServer, fleet: dict[str, Any]
) -> None:
    login(page, hub_server, "vic")
    page.goto(f"{hub_server.url}/devices/{LONG}")
    wait_js(page, "document.querySelectorAll('#events li.event').length >= 19")
    sentences = page.evaluate(
        "[...document.querySelectorAll('#events li.event')].map((li) => "
        "[li.dataset.kind, li.dataset.step, li.querySelector('.sentence').textContent])"
    )
    said = {
        f"{k}/{s}": [t for kk, ss, t in sentences if (kk, ss) == (k, s)] for k, s, _ in sentences
    }

    def has(key: str, *words: str) -> None:
        assert any(all(w in t for w in words) for t in said.get(key, [])), (
            key,
            words,
            said.get(key),
        )

    has("rollback/rolled_back", f"probation v3 failed: {REASON} → rolled back to v2")
    has("deploy/self_test", "self-test v2 passed", "onnxruntime-fp32", "agreement 100 %", "12.0 ms")
    has("deploy/downloading", "download v2", "1.2 MiB", "0.41 s")
    has("deploy/shadow", "agreement 98.0 %", "50 inputs")
    has("deploy/probation", "probation v2 passed", "120 inferences", "p95 2.10 ms")
    has("deploy/committed", "commit v2")
    has("deploy/failed", "deploy v4 refused: command expired")
    has("deploy/failed", "self-test v5 failed: no variant passed its self-test")
    has("rollback/rolled_back", "rolled back to v1 as commanded")
    has("rollback/rolled_back", "error rate 62.0 % on digits-2 → fell back to v1")
    has("rollback/failed", "rollback v7 refused: version 7 was never committed here")
    has("alert/", "drift alert: input mean moved")
    has("info/", "ping answered (up 3600 s)")
    has("info/", "config applied: ", "telemetry_interval = 5", "drift_threshold = 0.25")
    has("info/", "drift alert cleared")
    has("error/", "command refused: bad signature")
    has("reboot/warming_up", "reboot warming up: the agent restarted after a power cut")
    assert not any(t.lstrip().startswith("{") for _k, _s, t in sentences)  # no JSON blobs

    row = page.locator("#events li.event[data-kind=reboot]")
    pre = row.locator("details.raw pre")
    assert not pre.is_visible()
    row.locator("details.raw summary").click()
    wait_js(page, "document.querySelector('#events li[data-kind=reboot] details.raw').open")
    page.wait_for_timeout(2500)  # a poll redraws the list: the toggle stays open
    assert pre.is_visible()
    raw = json.loads(pre.inner_text())
    assert raw["kind"] == "reboot" and raw["device"] == LONG and len(raw["detail"]["x"]) == 256
    shot(page, "layout-timeline-raw")


def test_the_rollout_page_shows_each_devices_own_reason(
    page: Any, hub_server: HubServer, fleet: dict[str, Any]
) -> None:
    login(page, hub_server, "vic")
    page.goto(f"{hub_server.url}/rollouts/{fleet['rollout']}")
    wait_js(page, "document.querySelectorAll('#deployments tbody tr[data-device]').length >= 3")
    for dev in (LONG, "cam-1"):
        row = page.locator(f"#deployments tr[data-device='{dev}']")
        assert row.locator(".badge").inner_text() == "reverted"
        reason = row.locator("td.reason").inner_text()
        assert f"probation failed: {REASON}" in reason, reason
        assert row.locator(".device-reason").inner_text().endswith(REASON)
    other = page.locator("#deployments tr[data-device='cam-2'] td.reason").inner_text()
    assert REASON not in other and "previous version v2" in other  # no failure: the hub's note
    shot(page, "layout-rollout-reasons")


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_the_uploaded_cell_is_one_line(
    page: Any, hub_server: HubServer, fleet: dict[str, Any], viewport: str
) -> None:
    width, height = VIEWPORTS[viewport]
    page.set_viewport_size({"width": width, "height": height})
    login(page, hub_server, "olga")
    page.goto(f"{hub_server.url}/models")
    wait_js(page, "document.querySelectorAll('#versions td.uploaded').length === 2")
    cells = page.evaluate("""() => [...document.querySelectorAll('#versions td.uploaded')]
      .map((td) => {
      const r = document.createRange(); r.selectNodeContents(td);
      const tops = new Set([...r.getClientRects()].map((x) => Math.round(x.top)));
      return { lines: tops.size, text: td.textContent, title: td.title };
    })""")
    assert len(cells) == 2
    for c in cells:
        assert c["lines"] == 1, c
        assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d\b", c["text"]), c  # compact date
        # the full timestamp (with seconds) is in the tooltip
        assert re.search(r"\d{1,2}:\d\d:\d\d", c["title"]) and c["title"] != c["text"], c
