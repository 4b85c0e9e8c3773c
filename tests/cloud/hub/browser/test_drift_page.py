"""Browser: the device page names the drifting feature with its PSI and since when, the
fleet page names it for the device, and both clear live when the alert clears."""

from __future__ import annotations

import time
from typing import Any

import pytest

from cloud.hub.ingest.telemetry_store import write_batch
from edge.contract import ModelRef, Telemetry
from tests.cloud.hub.browser.conftest import HubServer, login, shot, wait_until
from tests.cloud.hub.browser.seed import metrics, seed_fleet

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def drift_telemetry(seq: int, ts: float, alert: bool) -> Telemetry:
    m = metrics(seq)
    m["drift"] = {
        "input_psi": 0.19, "output_psi": 0.02, "confidence_psi": 0.04, "threshold": 0.2,
        "feature_threshold": 0.3, "alert": alert, "alert_on": ["feature"] if alert else [],
        "granularity": "feature",
        "features": [{"name": "sensor_11", "psi": 3.39 if alert else 0.05},
                     {"name": "sensor_02", "psi": 0.04}],
        "worst": {"name": "sensor_11", "psi": 3.39 if alert else 0.05},
    }  # fmt: skip
    model = ModelRef("digits", 1, "onnxruntime", "fp32")
    return Telemetry(device="cam-2", ts=ts, seq=seq, model=model, metrics=m)


def test_drifting_feature_on_device_and_fleet_pages(page: Any, hub_server: HubServer) -> None:
    since = time.time() - 120
    with hub_server.session() as db:
        seed_fleet(db, now=since - 60)  # the fleet's own telemetry is older
        write_batch(db, [drift_telemetry(5000, since, True)])
        write_batch(db, [drift_telemetry(5001, time.time(), True)])
    login(page, hub_server, "vic")
    page.goto(f"{hub_server.url}/")
    page.wait_for_selector("#fleet td[data-drift=sensor_11]")
    assert "sensor_11" in page.inner_text("tr[data-device=cam-2]")
    assert page.inner_text("[data-count=drift]") == "1"
    page.goto(f"{hub_server.url}/devices/cam-2")
    row = page.wait_for_selector("#drift tr[data-drift=sensor_11]")
    text = row.inner_text()
    assert "sensor_11" in text and "3.39" in text and "0.3" in text
    assert "2 min ago" in text  # since the first telemetry that had it over the threshold
    assert "sensor_11" in page.inner_text("#drift-state")
    assert page.locator("#drift tr[data-drift]").count() == 1  # sensor_02 is under 0.3
    shot(page, "drift-device")
    with hub_server.session() as db:  # the alert clears: the page follows without a reload
        write_batch(db, [drift_telemetry(5002, time.time(), False)])
    wait_until(lambda: page.locator("#drift tr[data-drift]").count() == 0, 10)
    assert page.inner_text("#drift-state") == "No drift alert."
