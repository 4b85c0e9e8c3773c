"""Drifting features on the hub: read defensively from telemetry, stored per device with
since when, cleared when the alert clears, served by the device API and the fleet list;
on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud.hub.app import create_app
from cloud.hub.config import HubConfig
from cloud.hub.http.auth import create_api_token
from cloud.hub.ingest.telemetry_fields import DriftSignal, drift_reading, drift_summary
from tests.cloud.hub import helpers
from tests.cloud.hub.helpers import feed
from tests.cloud.hub.pg_schema import throwaway_schema


def drift_block(alert: bool = True, **changes: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "input_psi": 0.19, "output_psi": 0.02, "confidence_psi": 0.05, "threshold": 0.2,
        "feature_threshold": 0.3, "alert": alert, "alert_on": ["feature"] if alert else [],
        "granularity": "feature",
        "features": [{"name": "sensor_11", "psi": 3.4}, {"name": "sensor_02", "psi": 0.31},
                     {"name": "sensor_05", "psi": 0.12}],
        "worst": {"name": "sensor_11", "psi": 3.4},
    }  # fmt: skip
    block.update(changes)
    return block


def test_reading_names_the_features_over_their_threshold() -> None:
    r = drift_reading({"drift": drift_block()})
    assert r is not None and r.alert
    assert r.signals == (
        DriftSignal("feature", "sensor_11", 3.4, 0.3),
        DriftSignal("feature", "sensor_02", 0.31, 0.3),
    )
    both = drift_reading({"drift": drift_block(output_psi=0.5, granularity="channel")})
    assert both is not None
    assert [(s.kind, s.name) for s in both.signals] == [
        ("channel", "sensor_11"), ("channel", "sensor_02"), ("output", "output")]  # fmt: skip
    assert drift_reading({"drift": drift_block(alert=False)}) == (False, ())


def test_an_old_agent_block_still_reads() -> None:
    """Telemetry from before per-feature drift: the mean alerts, no features."""
    old = {"input_psi": 0.4, "output_psi": 0.01, "threshold": 0.2, "alert": True}
    assert drift_reading({"drift": old}) == (True, (DriftSignal("mean", "mean", 0.4, 0.2),))
    assert drift_summary({"drift": old}) == {"drift_worst": None, "drift_alert_on": []}


@pytest.mark.parametrize("drift", [None, "alert", [], {"alert": "yes"}, {"alert": 1}, {}])
def test_unreadable_blocks_change_nothing(drift: Any) -> None:
    assert drift_reading({"drift": drift} if drift is not None else {}) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"features": "sensor_11"},
        {"features": [1, None, "x", {"name": 3, "psi": 1.0}, {"name": "", "psi": 1.0}]},
        {
            "features": [
                {"name": "a", "psi": "big"},
                {"name": "b", "psi": float("nan")},
                {"name": "c", "psi": -1.0},
                {"name": "d", "psi": True},
                {"name": "e", "psi": 10**400},
            ]
        },
        {"feature_threshold": "0.3"},
        {"feature_threshold": float("inf")},
        {"features": [{"name": "x" * 10_000, "psi": 9.0}] * 100_000},
    ],
)
def test_malformed_features_are_skipped(changes: dict[str, Any]) -> None:
    r = drift_reading({"drift": drift_block(**changes)})
    assert r is not None and r.alert
    for s in r.signals:
        assert s.kind == "feature" and 0 < len(s.name) <= 128 and s.psi > s.threshold
    assert len(r.signals) <= 1  # at most the first of the huge list (dedup by name)
    summary = drift_summary({"drift": drift_block(**changes, worst=[1], alert_on="feature")})
    assert summary == {"drift_worst": None, "drift_alert_on": []}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def app(request: pytest.FixtureRequest, tmp_path: Path, keys: Any) -> Iterator[Any]:
    def make(url: str | None) -> Any:
        return create_app(
            HubConfig(
                data_dir=tmp_path / "hub",
                db_url=url,
                trusted_key=keys[1],
                background=False,
                testing=True,
            )
        )

    if request.param == "sqlite":
        application = make(None)
        yield application
    else:
        with throwaway_schema("drift") as url:
            application = make(url)
            yield application
    application.extensions["edgekit_hub"].stop()
    application.extensions["edgekit_hub"].db.dispose()


@pytest.fixture
def viewer(app: Any) -> dict[str, str]:
    with app.extensions["edgekit_hub"].db.session() as s:
        return {"Authorization": f"Bearer {create_api_token(s, 'viewer', 'viewer')}"}


def test_features_are_stored_with_since_when_and_cleared(app: Any, viewer: Any) -> None:
    c = app.test_client()
    t0 = time.time() - 30
    feed(app, helpers.status("d-1"), helpers.telemetry("d-1", 1, ts=t0, drift=drift_block()),
         helpers.telemetry("d-2", 1, ts=t0, drift=drift_block(alert=False)))  # fmt: skip
    feed(app, helpers.telemetry("d-1", 2, ts=t0 + 10, drift=drift_block(
        features=[{"name": "sensor_11", "psi": 2.9}, {"name": "sensor_07", "psi": 0.4}],
        worst={"name": "sensor_11", "psi": 2.9}, output_psi=0.6, alert_on=["feature", "output"],
    )))  # fmt: skip
    d = c.get("/api/v1/devices/d-1", headers=viewer).get_json()
    by_name = {x["name"]: x for x in d["drift"]}
    assert list(by_name) == ["sensor_11", "output", "sensor_07", "sensor_02"]  # PSI desc
    s11 = by_name["sensor_11"]
    assert s11["since"] == pytest.approx(t0) and s11["last_seen"] == pytest.approx(t0 + 10)
    assert s11["psi"] == 2.9 and s11["threshold"] == 0.3 and s11["kind"] == "feature"
    assert s11["model"] == {"name": "digits", "version": 1}
    assert by_name["sensor_02"]["last_seen"] == pytest.approx(t0)  # no longer over, alert on
    assert by_name["output"]["since"] == pytest.approx(t0 + 10)
    assert d["kpis"]["drift_alert"] is True
    assert d["kpis"]["drift_worst"] == {"name": "sensor_11", "psi": 2.9}
    assert d["kpis"]["drift_alert_on"] == ["feature", "output"]

    fleet = c.get("/api/v1/drift?name=sensor_11", headers=viewer).get_json()
    assert [(x["device"], x["name"]) for x in fleet] == [("d-1", "sensor_11")]
    assert c.get("/api/v1/drift?kind=output", headers=viewer).get_json()[0]["device"] == "d-1"
    assert c.get("/api/v1/drift?kind=nope", headers=viewer).status_code == 400
    assert c.get("/api/v1/devices/d-2", headers=viewer).get_json()["drift"] == []

    # a replayed older message (lower seq) changes nothing; an unreadable block neither
    feed(app, helpers.telemetry("d-1", 0, ts=t0 - 5, drift=drift_block(alert=False)))
    feed(app, helpers.telemetry("d-1", 3, ts=t0 + 20, drift={"alert": "off"}))
    assert len(c.get("/api/v1/devices/d-1", headers=viewer).get_json()["drift"]) == 4
    # the alert clears: every row of the device goes
    feed(app, helpers.telemetry("d-1", 4, ts=t0 + 30, drift=drift_block(alert=False)))
    assert c.get("/api/v1/devices/d-1", headers=viewer).get_json()["drift"] == []
    assert c.get("/api/v1/drift", headers=viewer).get_json() == []


def test_malformed_drift_never_breaks_ingest(app: Any, viewer: Any) -> None:
    c = app.test_client()
    bad = drift_block(features=[{"name": "x" * 500, "psi": 1e300}, {"name": None}] * 1000,
                      threshold=-1, feature_threshold=None, worst="?", alert_on=[{}])  # fmt: skip
    bridge = feed(app, helpers.telemetry("m-1", 1, drift=bad))
    assert bridge.counters["stored"] == 1 and bridge.counters["db_errors"] == 0
    d = c.get("/api/v1/devices/m-1", headers=viewer).get_json()
    assert d["drift"] == [] and d["kpis"]["drift_alert"] is True
    assert d["kpis"]["drift_worst"] is None
