"""The fleet page's uPlot charts (tooltip, zoom, width) and its markdown model card, in
Chromium: values under the cursor, drag to zoom and double-click to reset, a card with
wrapped list items and tables but no scripts, foreign images or build-machine paths, and
no request that leaves the hub."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from cloud.hub.ingest.telemetry_store import write_batch
from tests.bundles import make_bundle
from tests.cloud.hub.browser.conftest import HubServer, login, shot, wait_js, wait_until
from tests.cloud.hub.browser.seed import seed_fleet, telemetry

pytestmark = [pytest.mark.slow, pytest.mark.integration]

HOSTILE_CARD = """# pathy v1

Built on /tmp/edgekit-export-x1/scratch from `/home/alice/data/digits.npz`.

- a first list item whose text is long enough that the author wrapped it
  onto a second line in the markdown source
- second item, run dir /work/main/runs/digits

| variant | accuracy | source |
|---|---:|---|
| onnxruntime-fp32 | 0.93 | /home/alice/data/digits.npz |

<script>window.__cardXss = 1</script> <img src=x onerror="window.__cardXss = 2">

[js link](javascript:window.__cardXss=3) ![tracker](https://tracker.example.org/pixel.png)
![inline data](data:image/png;base64,iVBORw0KGgo=) [web link](https://example.org/docs)
"""


@pytest.fixture
def seeded(hub_server: HubServer) -> HubServer:
    with hub_server.session() as db:
        seed_fleet(db)
    return hub_server


def record_requests(page: Any) -> list[str]:
    """Every URL the page requests, and (as "CSP: ...") every Content-Security-Policy
    violation Chromium reports in the console."""
    urls: list[str] = []
    page.on("request", lambda req: urls.append(req.url))
    page.on(
        "console",
        lambda msg: (
            urls.append(f"CSP: {msg.text}") if "Content Security Policy" in msg.text else None
        ),
    )
    return urls


def assert_same_origin(urls: list[str], hub: HubServer) -> None:
    assert urls, "no request recorded"
    foreign = [u for u in urls if not u.startswith((hub.url + "/", "data:", "blob:"))]
    assert not foreign, foreign


def chart_range(page: Any, chart: str) -> tuple[float, float]:
    box = page.locator(f"#chart-{chart}")
    return float(box.get_attribute("data-x-min")), float(box.get_attribute("data-x-max"))


def open_device(page: Any, hub: HubServer, device: str = "cam-1") -> None:
    login(page, hub, "vic")
    page.goto(f"{hub.url}/devices/{device}")
    for chart in ("latency", "throughput", "drift", "confidence"):
        page.wait_for_selector(f"#chart-{chart} .uplot canvas")
    page.wait_for_selector("#chart-latency[data-x-max]")


def test_hover_shows_the_value_of_the_point_under_the_cursor(page: Any, seeded: HubServer) -> None:
    requests = record_requests(page)
    open_device(page, seeded)
    over = page.locator("#chart-latency .u-over").bounding_box()
    x_min, x_max = chart_range(page, "latency")
    frac = 0.62
    page.mouse.move(over["x"] + over["width"] * frac, over["y"] + over["height"] * 0.5)
    tip = page.locator("#chart-latency .chart-tip")
    wait_until(lambda: tip.is_visible(), 8)
    ts = float(str(tip.get_attribute("data-x")))
    under_cursor = x_min + frac * (x_max - x_min)
    assert abs(ts - under_cursor) <= 5 + 1e-6 * abs(ts)  # samples are 10 s apart: the nearest
    resp = page.request.get(
        f"{seeded.url}/api/v1/devices/cam-1/telemetry?since={x_min - 60:.0f}&resolution=raw"
    )
    point = next(p for p in resp.json()["points"] if abs(float(p["ts"]) - ts) < 1e-3)
    p95 = point.get("latency_p95", (point.get("latency_ms") or {}).get("p95"))
    expected = f"p95: {float(f'{p95:.3g}'):g} ms"
    text = tip.inner_text()
    assert expected in text, (expected, text)
    assert time.strftime("%H:%M:%S", time.localtime(ts)) in text  # the sample's time
    legend = page.inner_text("#chart-latency .u-legend")
    assert expected.split(": ")[1] in legend  # the legend follows the cursor too
    shot(page, "charts-hover")
    page.mouse.move(over["x"] + over["width"] + 200, over["y"] - 100)
    wait_until(lambda: not tip.is_visible(), 8)
    assert_same_origin(requests, seeded)


def test_drag_zooms_double_click_resets_and_zoom_survives_new_data(
    page: Any, seeded: HubServer
) -> None:
    open_device(page, seeded)
    full = chart_range(page, "throughput")
    over = page.locator("#chart-throughput .u-over").bounding_box()
    y = over["y"] + over["height"] / 2
    page.mouse.move(over["x"] + over["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(over["x"] + over["width"] * 0.6, y, steps=8)
    page.mouse.up()
    wait_until(lambda: page.get_attribute("#chart-throughput", "data-zoomed") == "true", 8)
    zoomed = chart_range(page, "throughput")
    assert full[0] < zoomed[0] < zoomed[1] < full[1]
    assert zoomed[1] - zoomed[0] < 0.45 * (full[1] - full[0])
    shot(page, "charts-zoomed")
    # the page polls every 2 s: a new sample arrives, the zoom stays
    before = int(str(page.get_attribute("#chart-throughput", "data-points")))
    with seeded.session() as db:
        write_batch(db, [telemetry("cam-1", time.time(), 5000, 1)])
    wait_until(
        lambda: int(str(page.get_attribute("#chart-throughput", "data-points"))) > before, 10
    )
    assert chart_range(page, "throughput") == pytest.approx(zoomed)
    page.mouse.dblclick(over["x"] + over["width"] / 2, y)
    wait_until(lambda: page.get_attribute("#chart-throughput", "data-zoomed") == "false", 8)
    reset = chart_range(page, "throughput")
    assert reset[0] <= full[0] + 1e-6 and reset[1] > full[1]  # the whole data, new sample too


def test_charts_follow_the_width_of_their_box(page: Any, seeded: HubServer) -> None:
    open_device(page, seeded)

    def widths() -> list[tuple[float, float]]:
        return page.evaluate(
            "[...document.querySelectorAll('.chart-box')].filter((b) => b.querySelector('.uplot'))"
            ".map((b) => [b.querySelector('.uplot canvas').getBoundingClientRect().width,"
            " b.getBoundingClientRect().width])"
        )

    wide = widths()
    assert len(wide) == 4 and all(c <= b + 1 for c, b in wide)
    page.set_viewport_size({"width": 390, "height": 844})
    wait_js(page, "[...document.querySelectorAll('.chart-box canvas')].every((c) => "
            "c.getBoundingClientRect().right <= window.innerWidth)", 10_000)  # fmt: skip
    narrow = widths()
    assert all(c <= b + 1 for c, b in narrow)
    assert max(c for c, _ in narrow) < min(c for c, _ in wide)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "charts-390")


def test_model_card_renders_lists_and_tables_without_paths_or_scripts(
    page: Any, hub_server: HubServer, tmp_path: Path
) -> None:
    bundle = make_bundle(
        tmp_path / "pathy-1.ekb",
        hub_server.private_key,
        version=1,
        name="pathy",
        files={
            "model_card.md": HOSTILE_CARD.encode(),
            "report.json": json.dumps(
                {"variants": [{"target": "onnxruntime-fp32", "runtime": "onnxruntime",
                               "precision": "fp32", "included": True, "accuracy": 0.93,
                               "latency_ms": 0.05, "latency_p95_ms": 0.08, "size": 1000,
                               "reason": "", "error": None},
                              {"target": "litert-int8", "runtime": "litert", "precision": "int8",
                               "included": False, "accuracy": None, "latency_ms": None,
                               "reason": "failed: /tmp/edgekit-x/m.tflite missing"}]}
            ).encode(),
        },
    )  # fmt: skip
    requests = record_requests(page)
    login(page, hub_server, "olga")
    page.goto(f"{hub_server.url}/models")
    page.set_input_files("#bundle", str(bundle))
    page.click("#upload-button")
    page.wait_for_selector("tr[data-model='pathy@1']")
    page.wait_for_selector("#card table")
    items = page.locator("#card li")
    assert items.count() == 2
    first = " ".join(items.nth(0).inner_text().split())
    assert first == (
        "a first list item whose text is long enough that the author wrapped it "
        "onto a second line in the markdown source"
    )
    assert page.locator("#card table th").all_inner_texts() == ["variant", "accuracy", "source"]
    assert page.locator("#card table td").all_inner_texts() == [
        "onnxruntime-fp32", "0.93", "digits.npz"
    ]  # fmt: skip
    card = page.inner_text("#card")
    for leak in ("/tmp/", "/home/", "/work/", "alice"):
        assert leak not in card, leak
    assert "digits.npz" in card and "<script>" in card  # named, and the script is text
    page.wait_for_selector("#chart-latency .uplot canvas")
    # The champion check sits above the chart: bring it into the viewport to hover it.
    page.locator("#chart-latency").scroll_into_view_if_needed()
    bars = page.locator("#chart-latency .u-over").bounding_box()
    page.mouse.move(bars["x"] + bars["width"] * 0.25, bars["y"] + bars["height"] * 0.7)
    tip = page.locator("#chart-latency .chart-tip")
    wait_until(lambda: tip.is_visible(), 8)
    assert tip.inner_text().split("\n")[:2] == ["onnxruntime-fp32", "export p95: 0.08 ms"]
    variants = page.inner_text("#variants")
    assert "m.tflite" in variants and "/tmp/" not in variants
    assert page.evaluate("window.__cardXss") is None
    assert page.locator("#card script, #card [onerror], #card a[href^=javascript]").count() == 0
    assert page.locator("#card img").count() == 0  # the foreign and data: images are text
    assert page.locator("#card a").evaluate_all("(as) => as.map((a) => a.href)") == [
        "https://example.org/docs"
    ]
    shot(page, "card-markdown")
    assert_same_origin(requests, hub_server)
