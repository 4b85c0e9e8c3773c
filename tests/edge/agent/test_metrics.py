"""The agent's ``GET /metrics``: parsed back with prometheus_client's own parser."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge import contract as c
from edge.errors import InputError
from tests.bundles import raw_digit
from tests.edge.agent.test_agent import Rig, rig  # noqa: F401 - pytest fixture "rig"
from tests.edge.agent_kit import kit_fixture  # noqa: F401 - pytest fixture "kit"


def scrape(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        return resp.headers["Content-Type"], resp.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def test_agent_metrics_endpoint(rig: Rig) -> None:  # noqa: F811
    agent = rig.start(bundle=str(rig.kit["v1"]), http_port="0")
    assert agent.http is not None
    for _ in range(5):
        agent.predict(raw_digit())
    for bad in ([1, 2], [3]):  # refused inputs: rejections, not errors
        with pytest.raises(InputError):
            agent.predict(bad)
    agent.monitor.record_error("timeout")
    ctype, text = scrape(agent.http.url)
    assert ctype.startswith("text/plain") and "version=" in ctype
    got = samples(text)
    assert got[("edgekit_agent_inferences_total", ())] == 5
    assert got[("edgekit_agent_inference_errors_total", (("kind", "timeout"),))] == 1
    assert got[("edgekit_agent_rejected_inputs_total", (("reason", "shape"),))] == 2
    buckets = [
        v
        for (name, _lab), v in got.items()
        if name == "edgekit_agent_inference_latency_seconds_bucket"
    ]
    assert len(buckets) == len(c.LATENCY_BUCKETS_S) + 1
    assert buckets == sorted(buckets) and buckets[-1] == 5  # cumulative, +Inf = count
    assert got[("edgekit_agent_inference_latency_seconds_count", ())] == 5
    assert 0 < got[("edgekit_agent_inference_latency_seconds_sum", ())] < 5
    model = [dict(k[1]) for k in got if k[0] == "edgekit_agent_model_info"]
    ref = agent.status().model
    assert ref is not None and model == [
        {"model": "digits", "version": "1", "runtime": ref.runtime, "precision": ref.precision}
    ]
    assert got[("edgekit_agent_outbox_messages", ())] >= 0
    assert got[("edgekit_agent_drift_alert", ())] == 0
    assert got[("edgekit_agent_uptime_seconds", ())] > 0
    assert got[("edgekit_agent_memory_rss_bytes", ())] > 10 * 2**20
    assert ("process_resident_memory_bytes", ()) in got


def test_counters_survive_a_model_change(rig: Rig) -> None:  # noqa: F811
    """A new model gets a new monitor; the run's counters and histogram carry over."""
    agent = rig.start(bundle=str(rig.kit["v1"]), http_port="0")
    assert agent.http is not None
    for _ in range(3):
        agent.predict(raw_digit())
    before = agent.monitor
    agent.reporter._monitor_model = None  # as if another model were installed
    agent.reporter.model_changed(publish=False)
    assert agent.monitor is not before
    agent.predict(raw_digit())
    got: dict[Any, float] = samples(scrape(agent.http.url)[1])
    assert got[("edgekit_agent_inferences_total", ())] == 4
    assert got[("edgekit_agent_inference_latency_seconds_count", ())] == 4
