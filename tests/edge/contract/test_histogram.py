"""The telemetry ``latency_histogram``: the contract's fixed bounds, strict parsing, and the
published schema agreeing with what the real monitor sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge import contract as c
from edge.errors import ContractError
from edge.serving import Monitor

SCHEMA = Path(__file__).resolve().parents[3] / "docs" / "schemas" / "telemetry.schema.json"


def snapshot(latencies_ms: list[float]) -> dict[str, Any]:
    m = Monitor(["a", "b"])
    for ms in latencies_ms:
        m.record(ms, np.array([0.8, 0.2]))
    return m.snapshot()


def test_monitor_counts_each_latency_under_its_le_bound() -> None:
    lat = [0.5, 0.50001, 1.0, 9.0, 30_000.0, 30_001.0]  # ms; 0.5 ms is exactly a bound
    snap = snapshot(lat)
    h = c.LatencyBuckets.parse(snap["latency_histogram"])
    assert h is not None and h.le == c.LATENCY_BUCKETS_S and h.count == snap["inferences"] == 6
    cum = h.cumulative()
    for le, n in zip([*h.le, float("inf")], cum, strict=True):
        assert n == sum(1 for ms in lat if ms / 1000 <= le), le
    assert h.sum_s == pytest.approx(sum(lat) / 1000)
    assert c.latency_bucket(0.0005) == 0 and c.latency_bucket(99.0) == len(c.LATENCY_BUCKETS_S)
    idle = c.LatencyBuckets.parse(Monitor(["a"]).snapshot()["latency_histogram"])
    assert idle is not None and idle.count == 0 and idle.sum_s == 0


def test_round_trip_and_absent() -> None:
    h = c.LatencyBuckets.parse(snapshot([2.0])["latency_histogram"])
    assert h is not None and c.LatencyBuckets.parse(h.to_dict()) == h
    assert c.LatencyBuckets.parse(None) is None
    t = c.Telemetry("d", 1.0, 1, None, {"inferences": 0})
    assert t.latency_histogram() is None


BAD = [
    "buckets",
    {"le": [], "counts": [0], "sum_s": 0},
    {"le": [0.1, 0.1], "counts": [0, 0, 0], "sum_s": 0},
    {"le": [0.1, 0.05], "counts": [0, 0, 0], "sum_s": 0},
    {"le": [0.1, float("inf")], "counts": [0, 0, 0], "sum_s": 0},
    {"le": [-1.0], "counts": [0, 0], "sum_s": 0},
    {"le": [0.1, True], "counts": [0, 0, 0], "sum_s": 0},
    {"le": [0.1], "counts": [1], "sum_s": 0},
    {"le": [0.1], "counts": [1, -1], "sum_s": 0},
    {"le": [0.1], "counts": [1, 1.5], "sum_s": 0},
    {"le": [0.1], "counts": [1, 0], "sum_s": -1},
    {"le": [0.1], "counts": [1, 0], "sum_s": float("nan")},
    {"le": [0.1], "counts": [1, 0]},
    {"le": [0.001 * (i + 1) for i in range(65)], "counts": [0] * 66, "sum_s": 0},
]


@pytest.mark.parametrize("bad", BAD)
def test_malformed_histograms_are_refused_with_a_reason(bad: Any) -> None:
    with pytest.raises(ContractError, match="latency_histogram"):
        c.LatencyBuckets.parse(bad)
    t = c.Telemetry("d", 1.0, 1, None, {"latency_histogram": bad})
    with pytest.raises(ContractError):
        t.latency_histogram()


def test_schema_accepts_the_monitor_and_refuses_malformed() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    prop = {"type": "object", "properties": {"h": schema["properties"]["latency_histogram"]}}
    check = jsonschema.validators.validator_for(schema)(prop)
    good = c.Telemetry("d", 1.0, 1, None, snapshot([1.0, 5.0])).to_dict()
    assert not list(validator.iter_errors(c.decode_json(c.encode_json(good))))
    assert "latency_histogram" not in schema["required"]  # optional: older agents omit it
    for bad in BAD:
        if isinstance(bad, dict) and any(
            isinstance(v, float) and v != v for v in bad.values()
        ):  # NaN cannot be encoded as JSON: the wire refuses it first
            continue
        if bad in (BAD[2], BAD[3], BAD[7], BAD[4]):
            continue  # order, +Inf and the counts' length are beyond JSON Schema: the parser's job
        assert not check.is_valid({"h": bad}), bad
