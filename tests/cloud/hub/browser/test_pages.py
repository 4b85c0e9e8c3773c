"""Browser tests of the fleet web page that need only the hub (no agents, no broker)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cloud.hub.ingest.telemetry_store import write_batch
from cloud.hub.storage import Device, ModelVersion
from tests.cloud.hub.browser.bundles import make_bundle
from tests.cloud.hub.browser.conftest import PASSWORD, HubServer, login, shot, wait_js, wait_until
from tests.cloud.hub.browser.seed import seed_fleet, telemetry

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def csrf(page: Any) -> str:
    return str(page.get_attribute("meta[name=csrf-token]", "content"))


def upload_via_api(page: Any, hub: HubServer, bundle: Path) -> Any:
    return page.request.post(
        f"{hub.url}/api/v1/models",
        multipart={"bundle": {"name": bundle.name, "mimeType": "application/gzip",
                              "buffer": bundle.read_bytes()}},
        headers={"X-CSRFToken": csrf(page)},
    )  # fmt: skip


@pytest.fixture
def seeded(hub_server: HubServer) -> HubServer:
    with hub_server.session() as db:
        seed_fleet(db)
    return hub_server


def test_login_logout_and_redirect_back(page: Any, hub_server: HubServer) -> None:
    page.goto(f"{hub_server.url}/models")
    assert "/login" in page.url
    shot(page, "01-login")
    page.fill("#username", "ada")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=role]")
    assert page.url.endswith("/models")
    assert page.inner_text("[data-testid=role]").lower() == "admin"
    page.click("text=Log out")
    page.wait_for_selector("#password")
    page.goto(f"{hub_server.url}/")
    assert "/login" in page.url


def test_wrong_password_is_refused(page: Any, hub_server: HubServer) -> None:
    page.goto(f"{hub_server.url}/login")
    page.fill("#username", "ada")
    page.fill("#password", "not-the-password")
    with page.expect_response(lambda r: r.url.endswith("/login")) as resp:
        page.click("button[type=submit]")
    assert resp.value.status == 401
    assert "Wrong user name or password" in page.inner_text(".form-error")
    assert page.input_value("#username") == "ada"
    page.goto(f"{hub_server.url}/")
    assert "/login" in page.url


def test_open_redirect_is_not_followed(page: Any, hub_server: HubServer) -> None:
    page.goto(f"{hub_server.url}/login?next=//evil.example/x")
    page.fill("#username", "vic")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=role]")
    assert page.url.startswith(hub_server.url)


def test_csrf_is_required_for_cookie_writes(page: Any, seeded: HubServer) -> None:
    login(page, seeded, "olga")
    url = f"{seeded.url}/api/v1/devices/cam-1"
    refused = page.request.patch(url, data={"tags": ["hacked"]})
    assert refused.status == 400
    assert refused.json()["error"]["code"] == "csrf"
    forged = page.request.patch(url, data={"tags": ["hacked"]}, headers={"X-CSRFToken": "forged"})
    assert forged.status == 400
    with seeded.session() as db:
        assert "hacked" not in db.get(Device, "cam-1").tags
    ok = page.request.patch(url, data={"tags": ["lab", "ok"]}, headers={"X-CSRFToken": csrf(page)})
    assert ok.status == 200, ok.text()
    # The login form itself is CSRF-protected: a post without the token gets the form back.
    anon = page.context.browser.new_context()
    try:
        r = anon.request.post(f"{seeded.url}/login", form={"username": "ada", "password": PASSWORD})
        assert r.status == 400 and "form expired" in r.text()
    finally:
        anon.close()


def test_overview_matrix_filters_and_counts(page: Any, seeded: HubServer) -> None:
    login(page, seeded, "vic")
    page.wait_for_selector("tr[data-device=cam-1]")
    rows = page.locator("#fleet tbody tr[data-device]")
    assert rows.count() == 4
    assert "unenrolled" in page.inner_text("tr[data-device=rogue-9]")
    assert "unenrolled" not in page.inner_text("tr[data-device=cam-1]")
    assert page.inner_text("[data-count=online]") == "3"
    assert page.inner_text("[data-count=unenrolled]") == "1"
    chip = page.locator("#version-counts [data-version='digits v1']")
    assert chip.inner_text().replace("\n", " ").endswith("2")
    cam1 = page.inner_text("tr[data-device=cam-1]")
    assert "digits v1" in cam1 and "online" in cam1 and " ms" in cam1 and "%" in cam1
    assert "offline" in page.inner_text("tr[data-device=gate-7]")
    shot(page, "02-overview")
    page.select_option("#filter-tag", "floor-2")
    wait_until(lambda: rows.count() == 1)
    assert rows.first.get_attribute("data-device") == "gate-7"
    page.select_option("#filter-tag", "")
    chip.click()
    wait_until(lambda: rows.count() == 2)
    assert "version=digits" in page.url  # filters survive a reload / can be shared


def test_overview_updates_live_without_reload(page: Any, seeded: HubServer) -> None:
    login(page, seeded, "vic")
    page.wait_for_selector("tr[data-device=cam-1]")
    page.evaluate("window.__noReload = true")
    with seeded.session() as db:
        write_batch(db, [telemetry("cam-1", time.time(), 999, 1, p95=41.0)])
        db.add(
            Device(
                id="new-cam", tags=["lab"], enrolled=False, online=True, capabilities={}, kpis={}
            )
        )
    page.wait_for_selector("tr[data-device=new-cam]", timeout=8000)
    wait_until(lambda: "4" in page.inner_text("tr[data-device=cam-1] td:nth-child(5)"), timeout=8)
    assert page.evaluate("window.__noReload") is True


def test_device_page_charts_events_and_tags(page: Any, seeded: HubServer) -> None:
    login(page, seeded, "olga")
    page.goto(f"{seeded.url}/devices/cam-1")
    for chart in ("latency", "throughput", "drift", "confidence"):
        page.wait_for_selector(f"#chart-{chart} .uplot canvas")
    assert page.locator("#chart-latency .u-legend .u-series").count() == 3  # time, p50, p95
    page.wait_for_selector("#events li[data-step=committed]")
    assert page.locator("#events li").count() == 4
    assert "onnxruntime" in page.inner_text("#capabilities")
    page.fill("#tags-input", "lab, floor-1, camera")
    page.click("#tags-form button")
    page.wait_for_selector(".flash.ok")
    with seeded.session() as db:
        assert db.get(Device, "cam-1").tags == ["lab", "floor-1", "camera"]
    page.hover("#chart-latency .u-over", position={"x": 300, "y": 80})
    shot(page, "03-device")
    # live: a new sample shows up in the chart without a reload
    before = page.get_attribute("#chart-throughput", "data-points")
    with seeded.session() as db:
        write_batch(db, [telemetry("cam-1", time.time(), 2000, 1)])
    wait_until(lambda: page.get_attribute("#chart-throughput", "data-points") != before, 8)


def test_unknown_device_page_shows_error(page: Any, seeded: HubServer) -> None:
    login(page, seeded, "vic")
    page.goto(f"{seeded.url}/devices/nope")
    page.wait_for_selector(".live.bad")
    assert "unknown" in page.inner_text("#live")
    assert "nope" in page.inner_text(".flash.bad")


def test_upload_bundle_renders_card_safely(
    page: Any, hub_server: HubServer, tmp_path: Path
) -> None:
    bundle = make_bundle(tmp_path / "digits-1.ekb", hub_server.private_key, 1)
    login(page, hub_server, "olga")
    page.goto(f"{hub_server.url}/models")
    page.set_input_files("#bundle", str(bundle))
    page.click("#upload-button")
    page.wait_for_selector("tr[data-model='digits@1']")
    page.wait_for_selector("#card h1")
    assert page.inner_text("#detail-title") == "digits v1"
    card = page.inner_text("#card")
    assert "<script>" in card  # shown as text ...
    assert page.evaluate("window.__cardXss") is None  # ... never run
    assert page.locator("#card script, #card [onerror], #card a[href^=javascript]").count() == 0
    wait_js(page, "document.querySelector('#card img').naturalWidth > 0")
    assert page.locator("#variants tbody tr").count() == 2
    assert "left out" in page.inner_text("tr[data-variant=litert-int8]")
    page.wait_for_selector("#chart-latency .uplot canvas")
    shot(page, "04-models")
    with hub_server.session() as db:
        assert db.scalar(select(ModelVersion).where(ModelVersion.name == "digits")) is not None


def test_upload_of_a_bad_bundle_is_refused(
    page: Any, hub_server: HubServer, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.ekb"
    junk.write_bytes(b"this is not a bundle")
    login(page, hub_server, "olga")
    page.goto(f"{hub_server.url}/models")
    page.set_input_files("#bundle", str(junk))
    page.click("#upload-button")
    page.wait_for_selector(".flash.bad")
    assert "Upload refused" in page.inner_text(".flash.bad")
    # unsigned by the trusted key: refused as well
    from cloud.keys import generate_keypair

    other, _pub = generate_keypair(tmp_path / "other")
    page.set_input_files("#bundle", str(make_bundle(tmp_path / "d.ekb", other, 1)))
    page.click("#upload-button")
    wait_js(page, "document.querySelector('.flash.bad')?.innerText.includes('ignature')")
    assert page.locator("tr[data-model]").count() == 0


def test_viewer_sees_but_cannot_act(page: Any, seeded: HubServer, tmp_path: Path) -> None:
    login(page, seeded, "olga")
    assert upload_via_api(page, seeded, make_bundle(tmp_path / "b.ekb", seeded.private_key, 3)).ok
    page.click("text=Log out")
    login(page, seeded, "vic")
    page.goto(f"{seeded.url}/models")
    page.wait_for_selector("tr[data-model='digits@3']")
    assert page.is_disabled("#upload-button")
    page.goto(f"{seeded.url}/devices/cam-1")
    page.wait_for_selector("#info dd")
    assert page.is_disabled("#tags-form button")
    page.goto(f"{seeded.url}/rollouts")
    page.wait_for_selector("#model option", state="attached")
    assert page.is_disabled("#create-button")
    assert "Users" not in page.inner_text("nav")
    r = page.request.post(
        f"{seeded.url}/api/v1/rollouts",
        data={"model": "digits", "version": 3, "target": {"tags": ["lab"]}},
        headers={"X-CSRFToken": csrf(page)},
    )
    assert r.status == 403
    assert page.goto(f"{seeded.url}/users").status == 403
    shot(page, "05-viewer-rollouts")


def test_rollout_form_and_actions(page: Any, seeded: HubServer, tmp_path: Path) -> None:
    login(page, seeded, "olga")
    assert upload_via_api(page, seeded, make_bundle(tmp_path / "b.ekb", seeded.private_key, 2)).ok
    page.goto(f"{seeded.url}/rollouts?model=digits&version=2")
    page.wait_for_selector("#version option[value='2']", state="attached")
    page.fill("#tags", "lab")
    page.fill("#waves", "50, 100")
    page.fill("#soak", "5")
    page.fill("#gate-min-inferences", "20")
    page.fill("#latency-floor", "12.5")
    page.uncheck("[data-gate=drift]")
    page.uncheck("#start")
    shot(page, "06-rollout-form")
    page.click("#create-button")
    page.wait_for_url("**/rollouts/*")
    page.wait_for_selector("#state[data-state=draft]")
    spec = page.inner_text("#spec")  # what the form sent is what the rollout holds
    assert "20 inferences" in spec and "12.5 ms" in spec
    assert page.is_visible("button[data-action=start]")
    assert not page.is_visible("button[data-action=pause]")
    page.click("button[data-action=abort]")
    page.wait_for_selector("#state[data-state=aborted]")
    audit = page.inner_text("#audit tbody")
    assert "abort" in audit and "olga" in audit
    page.goto(f"{seeded.url}/rollouts")
    page.wait_for_selector("#rollouts tbody tr[data-rollout]")
    assert "aborted" in page.inner_text("#rollouts tbody")


def test_rollout_form_shows_api_errors(page: Any, seeded: HubServer, tmp_path: Path) -> None:
    login(page, seeded, "olga")
    assert upload_via_api(page, seeded, make_bundle(tmp_path / "b.ekb", seeded.private_key, 2)).ok
    page.goto(f"{seeded.url}/rollouts")
    page.wait_for_selector("#version option", state="attached")
    page.fill("#waves", "50, 20")  # not increasing
    page.fill("#tags", "lab")
    page.click("#create-button")
    wait_js(page, "document.querySelector('#form-error').innerText.length > 0")
    assert "increase" in page.inner_text("#form-error")
    assert "/rollouts/" not in page.url


def test_admin_adds_a_user_who_can_log_in(page: Any, hub_server: HubServer) -> None:
    login(page, hub_server, "ada")
    page.click("nav >> text=Users")
    page.fill("#new-username", "nina")
    page.fill("#new-password", "short")
    page.evaluate("document.querySelector('#new-password').removeAttribute('minlength')")
    page.click("#user-form button")
    assert "at least 8" in page.inner_text(".form-error")
    page.fill("#new-username", "nina")
    page.fill("#new-password", "long-enough-pw")
    page.select_option("#new-role", "operator")
    page.click("#user-form button")
    page.wait_for_selector("tr[data-user=nina]")
    shot(page, "07-users")
    page.click("text=Log out")
    login(page, hub_server, "nina", "long-enough-pw")
    assert page.inner_text("[data-testid=role]").lower() == "operator"
