"""Browser: the datasets page. Samples arrive through the real device upload endpoint and
are labeled through the API; an operator freezes a version from the page's form, reads its
fingerprint, filter and counts per class and per device, and opens an older version; the
hub's refusals show in the form; a viewer reads but cannot freeze."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from cloud.hub.http.auth import create_api_token
from tests.cloud.hub.browser.bundles import make_bundle
from tests.cloud.hub.browser.conftest import HubServer, login, shot, wait_js
from tests.cloud.hub.browser.test_layout import overflow
from tests.cloud.hub.samples.factory import add_device, body, image_input, sample

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# device -> the labels its samples get (None: left unlabeled, so in no dataset)
LABELS: dict[str, list[str | None]] = {"cam-1": ["3", "3", "5", "7"], "cam-2": ["5", "5", None]}


def seed(hub: HubServer, tmp: Path) -> dict[str, str]:
    """digits v1, seven samples from two devices, six of them labeled, and dataset
    ``digits-field`` v1 frozen over all of them by the ``seed`` token; returns its auth."""
    client = hub.app.test_client()
    with hub.session() as s:
        op = {"Authorization": f"Bearer {create_api_token(s, 'operator', 'seed')}"}
        devices = {d: add_device(s, d) for d in LABELS}
    bundle = make_bundle(tmp / "digits-1.ekb", hub.private_key, 1)
    data = {"bundle": (io.BytesIO(bundle.read_bytes()), bundle.name)}
    assert client.post("/api/v1/models", headers=op, data=data).status_code == 201
    labels: dict[str, str] = {}
    for i, (device, wanted) in enumerate(LABELS.items()):
        made = [sample(image_input(10 * i + j), version=1) for j in range(len(wanted))]
        resp = client.post(f"/api/v1/devices/{device}/samples", json=body(device, *made),
                           headers=devices[device])  # fmt: skip
        assert resp.status_code == 200 and len(resp.get_json()["accepted"]) == len(made)
        labels.update({m.id: y for m, y in zip(made, wanted, strict=True) if y is not None})
    assert client.post("/api/v1/samples/labels", headers=op,
                       json={"labels": labels}).status_code == 200  # fmt: skip
    made = client.post("/api/v1/datasets", headers=op, json={"name": "digits-field"})
    assert made.status_code == 201, made.get_json()
    return op


def counts(page: Any, table: str) -> dict[str, str]:
    rows = page.locator(f"#{table} tbody tr").all()
    return {r.locator("td").nth(0).inner_text(): r.locator("td").nth(1).inner_text() for r in rows}


def test_operator_freezes_a_version_and_reads_its_counts(
    page: Any, hub_server: HubServer, tmp_path: Path
) -> None:
    op = seed(hub_server, tmp_path)
    login(page, hub_server, "olga")
    page.goto(f"{hub_server.url}/samples")
    page.click("nav >> text=Datasets")
    page.wait_for_url("**/datasets")
    assert "active" in (page.locator("nav a", has_text="Datasets").get_attribute("class") or "")
    row = page.locator('#datasets tr[data-dataset="digits-field"]')
    row.wait_for()
    cells = row.locator("td").all_inner_texts()
    assert cells[:4] == ["digits-field", "v1", "1", "6"], cells
    assert cells[4] == "image · digits" and cells[6] == "seed", cells
    assert page.locator("#detail").is_hidden()

    # the hub's refusals speak through the form
    page.fill("#ds-name", "bad name!")
    page.click("#ds-create")
    wait_js(page, "document.querySelector('#ds-error').textContent.includes('dataset name')")
    page.fill("#ds-name", "digits-field")
    page.fill("#ds-device", "cam-9")
    page.click("#ds-create")
    wait_js(page, "document.querySelector('#ds-error').textContent.includes('no labeled samples')")

    page.fill("#ds-device", "cam-1")
    page.fill("#ds-model", "digits")
    page.click("#ds-create")
    page.wait_for_url("**/datasets/digits-field/2")
    page.wait_for_selector("#version-kv [data-testid=fingerprint]")
    client = hub_server.app.test_client()
    v2 = client.get("/api/v1/datasets/digits-field/2", headers=op).get_json()
    kv = page.locator("#version-kv")
    assert kv.locator("[data-testid=fingerprint]").inner_text() == v2["fingerprint"]
    assert kv.locator("[data-testid=filter]").inner_text() == "device=cam-1, model=digits"
    assert kv.locator("[data-testid=created-by]").inner_text() == "olga"
    assert "edgekit hub dataset export digits-field@2 --out DIR" in kv.inner_text()
    assert page.locator("#version-title").inner_text() == "digits-field v2"
    assert counts(page, "by-label") == {"3": "2", "5": "1", "7": "1"}
    assert counts(page, "by-device") == {"cam-1": "4"}
    versions = page.locator("#versions tbody tr")
    assert versions.count() == 2 and "selected" in (versions.first.get_attribute("class") or "")
    wait_js(page, "document.querySelector('#datasets tr[data-dataset=\"digits-field\"]')"
                  "?.children[1].textContent === 'v2'")  # fmt: skip
    shot(page, "datasets-version")

    # the older version is unchanged and one click away
    page.click('#versions tr[data-version="1"] a')
    page.wait_for_url("**/datasets/digits-field/1")
    wait_js(page, "document.querySelector('#version-title')?.textContent === 'digits-field v1'")
    assert counts(page, "by-label") == {"3": "2", "5": "3", "7": "1"}
    assert counts(page, "by-device") == {"cam-1": "4", "cam-2": "2"}
    assert page.locator("#version-kv [data-testid=filter]").inner_text() == "every labeled sample"
    assert page.locator("#version-kv [data-testid=created-by]").inner_text() == "seed"
    href = page.locator("#version-kv [data-testid=archive]").get_attribute("href")
    assert href == "/api/v1/datasets/digits-field/1/archive"
    archive = page.request.get(f"{hub_server.url}{href}")
    assert archive.status == 200 and archive.headers["content-type"] == "application/zip"


def test_viewer_reads_but_cannot_freeze_and_unknown_names_say_so(
    page: Any, hub_server: HubServer, tmp_path: Path
) -> None:
    seed(hub_server, tmp_path)
    login(page, hub_server, "vic")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: nothing sticks out
    page.goto(f"{hub_server.url}/datasets/digits-field")
    wait_js(page, "document.querySelector('#version-title')?.textContent === 'digits-field v1'")
    assert page.locator("#ds-create").is_disabled()
    assert counts(page, "by-device") == {"cam-1": "4", "cam-2": "2"}
    o = overflow(page)
    shot(page, "datasets-phone")
    assert o["scrollWidth"] <= o["innerWidth"], o
    page.goto(f"{hub_server.url}/datasets/nope")
    wait_js(page, "!document.querySelector('#detail-error').hidden")
    assert page.locator("#detail-error").inner_text() == "Dataset nope does not exist."
    page.goto(f"{hub_server.url}/datasets/digits-field/7")
    wait_js(page, "!document.querySelector('#detail-error').hidden")
    assert "has no version 7" in page.locator("#detail-error").inner_text()
