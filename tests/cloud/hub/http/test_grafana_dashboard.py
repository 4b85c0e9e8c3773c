"""docs/grafana/edgekit-fleet.json asks only for series, labels and label values that a test
hub's ``/metrics`` really exposes (a renamed series breaks this test, not the dashboard)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from cloud.hub.rollout.core.state import STATES
from tests.cloud.hub import helpers
from tests.cloud.hub.http.test_metrics import feed, monitor_histogram, telemetry

DASHBOARD = Path(__file__).resolve().parents[4] / "docs" / "grafana" / "edgekit-fleet.json"
SERIES = re.compile(r"\b(edgekit_[a-z0-9_]+)\s*(\{[^}]*\})?")
MATCHER = re.compile(r'([a-z_]+)\s*(=~|!=|!~|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
FUNCTIONS = {"sum", "max", "min", "avg", "rate", "increase", "histogram_quantile", "vector",
             "label_values", "or", "by"}  # fmt: skip


def expressions(dash: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return exprs


def exposed(app: Any) -> dict[str, dict[str, set[str]]]:
    """Every sample name the hub exposes, with its label names and values."""
    feed(app, helpers.status("g-1"), helpers.status("g-2", state="offline"),
         telemetry("g-1", 1, latency_histogram=monitor_histogram([1.0, 30.0]),
                   drift={"input_psi": 0.3, "output_psi": 0.1, "alert": True}))  # fmt: skip
    text = app.test_client().get("/metrics").data.decode()
    out: dict[str, dict[str, set[str]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            labels = out.setdefault(s.name, {})
            for k, v in s.labels.items():
                labels.setdefault(k, set()).add(v)
    out.setdefault("edgekit_rollouts", {}).setdefault("state", set()).update(STATES)
    return out


def test_every_expression_names_exposed_series_and_labels(app: Any) -> None:
    dash = json.loads(DASHBOARD.read_text())
    series = exposed(app)
    exprs = expressions(dash)
    assert len(exprs) >= 15
    for expr in exprs:
        found = SERIES.findall(expr)
        assert found, f"no edgekit series in {expr!r}"
        labels_here: set[str] = set()
        for name, selector in found:
            assert name in series, f"{name} (in {expr!r}) is not exposed"
            labels_here |= set(series[name])
            for label, op, value in MATCHER.findall(selector):
                assert label in series[name], f"{name} has no label {label!r}"
                if op == "=":
                    assert value in series[name][label], f'{name}{{{label}="{value}"}} never exists'
        for group in GROUPING.findall(expr):
            for label in filter(None, (g.strip() for g in group.split(","))):
                assert label in labels_here, f"{expr!r} groups by {label!r}, which no series has"
        words = set(re.findall(r"\b([a-z_]+)\s*\(", expr)) - {n for n, _ in found}
        assert words <= FUNCTIONS, f"unexpected functions {words - FUNCTIONS} in {expr!r}"


def test_the_panels_the_issue_asks_for_are_there() -> None:
    exprs = " ".join(expressions(json.loads(DASHBOARD.read_text())))
    assert 'edgekit_devices{state="online"}' in exprs
    assert "rate(edgekit_inferences_total" in exprs
    assert "rate(edgekit_inference_errors_total" in exprs
    assert "histogram_quantile(0.95, sum by (le, model, version) (rate(" in exprs
    assert "edgekit_drift_score" in exprs and "edgekit_bridge_messages_total" in exprs
