"""Browser: the labeling page. Samples arrive through the real device upload endpoint;
an operator labels them with keys, clicks and bulk actions, filters, sees progress; a
viewer sees them but cannot change them; tabular samples show as a table."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from cloud.hub.http.auth import create_api_token
from tests.cloud.hub.browser.bundles import make_bundle
from tests.cloud.hub.browser.conftest import HubServer, login, shot, wait_until
from tests.cloud.hub.samples.factory import (
    add_device,
    array_input,
    body,
    image_input,
    sample,
    tabular_input,
)

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def scores(top: int, p: float) -> list[float]:
    rest = (1 - p) / 9
    return [p if i == top else rest for i in range(10)]


def seed(hub: HubServer, tmp: Path) -> list[str]:
    """digits v1 in the registry (its labels are the classes) and six samples of cam-1."""
    client = hub.app.test_client()
    with hub.session() as s:
        admin = {"Authorization": f"Bearer {create_api_token(s, 'admin', 'seed')}"}
        device = add_device(s, "cam-1")
        add_device(s, "cam-2")
    bundle = make_bundle(tmp / "digits-1.ekb", hub.private_key, 1)
    data = {"bundle": (io.BytesIO(bundle.read_bytes()), bundle.name)}
    assert client.post("/api/v1/models", headers=admin, data=data).status_code == 201
    made = [
        sample(
            image_input(i),
            label=str(i + 1),
            version=1,
            scores=scores(i + 1, 0.4 + i / 20),
            captured_at=1_700_000_000.0 + i,
            reason="low_confidence" if i < 4 else "random",
        )
        for i in range(5)
    ]
    made.append(
        sample(
            array_input(9),
            label="9",
            version=1,
            scores=scores(9, 0.5),
            captured_at=1_700_000_010.0,
            reason="drift",
        )
    )
    resp = client.post("/api/v1/devices/cam-1/samples", json=body("cam-1", *made), headers=device)
    assert resp.status_code == 200 and len(resp.get_json()["accepted"]) == 6
    return [m.id for m in made]


def labels(hub: HubServer) -> dict[str, str | None]:
    from cloud.hub.storage import SampleRecord

    with hub.session() as s:
        return {r.id: r.label for r in s.query(SampleRecord)}


def card(page: Any, sid: str) -> Any:
    return page.locator(f'[data-sample="{sid}"]')


def test_operator_labels_with_keys_clicks_and_bulk(
    page: Any, hub_server: HubServer, tmp_path: Path
) -> None:
    ids = seed(hub_server, tmp_path)
    login(page, hub_server, "olga")
    page.goto(f"{hub_server.url}/samples")
    page.wait_for_selector(f'[data-sample="{ids[0]}"]')
    assert page.locator("#grid [data-sample]").count() == 6
    assert "0 of 6 labeled" in page.inner_text("#progress")
    first = card(page, ids[0])
    # the prediction is pre-filled: its class button is marked, its confidence shown
    assert first.locator(".class-btn.predicted").inner_text().endswith("1")
    assert "40 %" in first.locator(".pred").inner_text()
    assert first.locator("img.thumb").evaluate("i => i.complete && i.naturalWidth") == 8
    arr = card(page, ids[5]).locator("img.thumb")  # an image-like array: a PNG preview
    wait_until(lambda: arr.evaluate("i => i.complete && i.naturalWidth") == 8)
    shot(page, "samples-grid")
    fits_a_phone(page)

    # one key labels the focused sample and moves to the next unlabeled one
    assert page.evaluate("document.activeElement.dataset.sample") == ids[0]
    page.keyboard.press("7")
    wait_until(lambda: labels(hub_server)[ids[0]] == "7")
    wait_until(lambda: page.evaluate("document.activeElement.dataset.sample") == ids[1])
    # Enter accepts the prediction
    page.keyboard.press("Enter")
    wait_until(lambda: labels(hub_server)[ids[1]] == "2")
    # one click on a class button
    card(page, ids[2]).locator('.class-btn[data-class="0"]').click()
    wait_until(lambda: labels(hub_server)[ids[2]] == "0")
    wait_until(lambda: "3 of 6 labeled" in page.inner_text("#progress"))
    labeled = card(page, ids[2]).locator("[data-state=labeled]").inner_text()
    assert "label 0" in labeled and "olga" in labeled

    # bulk: select two, label them 4
    card(page, ids[3]).locator("input.pick").check()
    card(page, ids[4]).locator("input.pick").check()
    assert page.inner_text("#selected-count") == "2 selected"
    page.select_option("#bulk-label", "4")
    page.click("#bulk-apply")
    wait_until(lambda: labels(hub_server)[ids[3]] == labels(hub_server)[ids[4]] == "4")
    wait_until(lambda: "5 of 6 labeled" in page.inner_text("#progress"))

    # the unlabeled view (the default) now shows only the array sample; label it, then
    # relabel the first one from the "labeled" view: the history keeps both labels
    page.reload()
    page.wait_for_selector(f'[data-sample="{ids[5]}"]')
    assert page.locator("#grid [data-sample]").count() == 6 - 5
    page.select_option("#f-labeled", "true")
    wait_until(lambda: page.locator("#grid [data-sample]").count() == 5)
    assert "labeled=true" in page.url
    card(page, ids[0]).click()
    page.keyboard.press("3")
    wait_until(lambda: labels(hub_server)[ids[0]] == "3")
    history = (
        hub_server.app.test_client()
        .get(f"/api/v1/samples/{ids[0]}", headers=_viewer(hub_server))
        .get_json()["history"]
    )
    assert [(h["previous"], h["label"], h["by"]) for h in history] == [
        (None, "7", "olga"),
        ("7", "3", "olga"),
    ]

    # filters: by reason; Delete removes the focused sample and its file
    page.select_option("#f-labeled", "")
    page.select_option("#f-reason", "random")
    wait_until(lambda: page.locator("#grid [data-sample]").count() == 1)
    card(page, ids[4]).click()
    page.keyboard.press("Delete")  # the confirm dialog is accepted by the fixture
    wait_until(lambda: ids[4] not in labels(hub_server))
    # The row goes with the commit, the file just after it.
    wait_until(lambda: not (hub_server.data_dir / "samples" / "cam-1" / f"{ids[4]}.png").exists())
    wait_until(lambda: page.locator("#empty").is_visible())
    shot(page, "samples-filtered")


def _viewer(hub: HubServer) -> dict[str, str]:
    with hub.session() as s:
        return {"Authorization": f"Bearer {create_api_token(s, 'viewer', 'v')}"}


def test_viewer_sees_but_cannot_label(page: Any, hub_server: HubServer, tmp_path: Path) -> None:
    ids = seed(hub_server, tmp_path)
    login(page, hub_server, "vic")
    page.goto(f"{hub_server.url}/samples")
    page.wait_for_selector(f'[data-sample="{ids[0]}"]')
    assert card(page, ids[0]).locator(".class-btn").first.is_disabled()
    assert page.locator("#bulk-apply").is_disabled()
    page.keyboard.press("7")
    page.keyboard.press("Enter")
    # the keys did nothing: a label request would have been a 403 flash
    assert page.locator(".flash.bad").count() == 0
    assert set(labels(hub_server).values()) == {None}


def test_tabular_samples_are_a_table(page: Any, hub_server: HubServer) -> None:
    with hub_server.session() as s:
        device = add_device(s, "iris-1")
    rows = [
        sample(tabular_input(i), model="iris", version=1, label="setosa", scores=[0.5, 0.3, 0.2])
        for i in range(3)
    ]
    client = hub_server.app.test_client()
    resp = client.post("/api/v1/devices/iris-1/samples", json=body("iris-1", *rows), headers=device)
    assert resp.status_code == 200
    login(page, hub_server, "olga")
    page.goto(f"{hub_server.url}/samples")
    page.wait_for_selector("#table tbody tr[data-sample]")
    assert page.locator("#table tbody tr").count() == 3
    assert "petal_length" in page.text_content("#table thead")
    assert "2.4" in page.inner_text(f'#table tr[data-sample="{rows[1].id}"]')
    # no iris model in the registry: the classes are those the store has seen
    page.locator(f'#table tr[data-sample="{rows[0].id}"]').click()
    page.keyboard.press("0")  # class 0 of ["setosa"]
    wait_until(lambda: labels(hub_server)[rows[0].id] == "setosa")
    shot(page, "samples-table")
    fits_a_phone(page)


def fits_a_phone(page: Any) -> None:
    """At 390 px nothing widens the page: the grid wraps, the table scrolls in its panel."""
    size = page.viewport_size
    page.set_viewport_size({"width": 390, "height": 844})
    try:
        wait_until(
            lambda: page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), 5
        )
    finally:
        page.set_viewport_size(size)
