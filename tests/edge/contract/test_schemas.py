"""The published JSON Schemas accept what edge.contract and edge.serving.monitor really produce,
and reject what breaks the contract."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge import contract as c
from edge.serving import Monitor
from tests.commands import command
from tests.edge.serving.test_monitor import LABELS, METRIC_KEYS, make_reference, one_hot

jsonschema = pytest.importorskip("jsonschema")

SCHEMAS = Path(__file__).resolve().parents[3] / "docs" / "schemas"


# Every schema is checked by a draft-07 validator (what ajv 8, Node-RED and most tools
# read by default) and by jsonschema's default for a schema without $schema (its newest,
# 2020-12): a consumer may use either.
VALIDATORS = (jsonschema.Draft7Validator, jsonschema.validators.validator_for({}))  # + default


def validators(name: str) -> list[Any]:
    schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert jsonschema.validators.validator_for(schema) is jsonschema.Draft7Validator
    out = []
    for cls in VALIDATORS:
        cls.check_schema(schema)
        out.append(cls(schema))
    return out


def validator(name: str) -> Any:
    return validators(name)[0]


def wire(obj: dict[str, Any]) -> dict[str, Any]:
    """What a consumer actually receives: the encoded JSON, decoded again."""
    return c.decode_json(c.encode_json(obj))


def assert_valid(name: str, obj: dict[str, Any]) -> None:
    for v in validators(name):
        errors = sorted(v.iter_errors(wire(obj)), key=str)
        assert not errors, (type(v).__name__, [e.message for e in errors])


def assert_invalid(name: str, obj: dict[str, Any]) -> None:
    for v in validators(name):
        assert not v.is_valid(obj), type(v).__name__


MODEL = c.ModelRef(name="digits", version=3, runtime="onnxruntime", precision="int8")


def busy_metrics() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    m = Monitor(LABELS, make_reference(rng), min_drift_samples=10)
    for i in range(50):
        m.record(float(rng.lognormal(1, 0.5)), one_hot(i % 3), rng.normal(size=4), LABELS[0])
    m.record_error("timeout")
    m.record_rejection("shape")
    return m.snapshot(outbox={"queued": 2, "dropped": 0})


def idle_metrics() -> dict[str, Any]:
    return Monitor(LABELS).snapshot()


def test_every_schema_file_is_valid_draft_07_and_latest() -> None:
    names = sorted(p.name.removesuffix(".schema.json") for p in SCHEMAS.glob("*.schema.json"))
    assert names == ["cmd", "event", "infer.req", "infer.res", "reference", "samples", "status",
                     "telemetry"]  # fmt: skip
    for name in names:
        validator(name)


def test_status_online_and_offline() -> None:
    online = c.Status(
        device="cam-1",
        ts=1.5,
        seq=0,
        state="online",
        agent_version="0.1.0",
        model=MODEL,
        boot="b1",
        capabilities={"cores": 2},
    )
    assert_valid("status", online.to_dict())
    assert_valid("status", c.Status(device="cam-1", ts=2.0, seq=1, state="offline").to_dict())
    assert_invalid("status", {**online.to_dict(), "state": "sleeping"})
    assert_invalid("status", {**online.to_dict(), "device": "a/b"})


@pytest.mark.parametrize("metrics", [busy_metrics, idle_metrics])
def test_telemetry_from_the_real_monitor(metrics: Any) -> None:
    t = c.Telemetry(device="cam-1", ts=10.0, seq=7, model=MODEL, metrics=metrics(), boot="b1")
    assert_valid("telemetry", t.to_dict())
    no_model = c.Telemetry(device="cam-1", ts=10.0, seq=8, model=None, metrics=metrics())
    assert_valid("telemetry", no_model.to_dict())


def test_telemetry_schema_requires_every_metric_key() -> None:
    schema = json.loads((SCHEMAS / "telemetry.schema.json").read_text())
    assert set(schema["required"]) >= METRIC_KEYS
    good = c.Telemetry(device="d", ts=1.0, seq=1, model=None, metrics=busy_metrics()).to_dict()
    for key in METRIC_KEYS:
        assert_invalid("telemetry", {k: v for k, v in good.items() if k != key})
    assert_invalid("telemetry", {**good, "error_rate": 1.5})
    assert_invalid("telemetry", {**good, "drift": {"input_psi": 0.1}})
    assert_invalid("telemetry", {**good, "schema": "edgekit.telemetry/2"})


def test_events_for_every_deploy_step() -> None:
    for step in ("downloading", "verifying", "self_test", "shadow", "activating", "probation",
                 "committed", "rolled_back", "failed"):  # fmt: skip
        ev = c.Event(
            device="cam-1",
            ts=3.0,
            seq=4,
            kind="deploy",
            message=f"step {step}",
            step=step,
            rollout="r1",
            command="cmd-1",
            version=4,
            detail={"latency_ms": {"onnxruntime-fp32": 1.2}},
            boot="b1",
        )
        assert_valid("event", ev.to_dict())
    alert = c.Event(device="cam-1", ts=3.0, seq=5, kind="alert", message="drift")
    assert_valid("event", alert.to_dict())
    assert_invalid("event", {**alert.to_dict(), "kind": "party"})
    assert_invalid("event", {k: v for k, v in alert.to_dict().items() if k != "message"})


def test_commands() -> None:
    deploy = c.Command(
        id="cmd-1",
        kind="deploy",
        ts=5.0,
        device="cam-1",
        nonce="n" * 24,
        name="digits",
        version=4,
        url="http://hub/api/v1/models/digits/4/bundle",
        sha256="a" * 64,
        size=1234,
        rollout="r1",
        expires=99.0,
        key_id="0123456789abcdef",
        sig="c2ln",
    )
    assert_valid("cmd", deploy.to_dict())
    assert_valid("cmd", command("deploy", "cam-1", name="digits", version=4, url="http://h/b",
                                sha256="a" * 64, size=10))  # fmt: skip
    assert_valid("cmd", c.Command(id="c2", kind="rollback", ts=1.0, expires=9, version=2).to_dict())
    assert_valid("cmd", c.Command(id="c3", kind="ping", ts=1.0, expires=9).to_dict())
    assert_valid("cmd", command("keys", "cam-1", keys={"add": ["PEM"], "revoke": ["k1"]}))
    assert_invalid("cmd", {**deploy.to_dict(), "url": None})
    assert_invalid("cmd", {**deploy.to_dict(), "size": None})
    assert_invalid("cmd", {**deploy.to_dict(), "sha256": "xyz"})
    assert_invalid("cmd", {**deploy.to_dict(), "nonce": "short"})
    assert_invalid("cmd", {**deploy.to_dict(), "device": "../x"})
    assert_invalid("cmd", {k: v for k, v in deploy.to_dict().items() if k != "expires"})
    assert_invalid("cmd", command("keys", "cam-1"))
    assert_invalid(
        "cmd", {"schema": "edgekit.cmd/1", "id": "c", "kind": "rollback", "ts": 1.0, "expires": 2}
    )
    # what the schema accepts, the contract parser accepts too
    assert c.Command.parse(wire(deploy.to_dict())) == deploy


def test_inference_request_and_responses() -> None:
    req = {"schema": c.SCHEMA_INFER_REQ, "id": "r1", "inputs": [[0.0] * 4], "label": "cat"}
    assert_valid("infer.req", req)
    assert_valid("infer.req", {"id": 7, "inputs": {"f0": 1.0}})
    assert c.InferRequest.parse(req).id == "r1"
    assert_invalid("infer.req", {"inputs": [1]})
    assert_invalid("infer.req", {"id": "", "inputs": [1]})

    ok = c.InferResponse(
        id="r1", device="cam-1", ts=1.0, label="cat", scores=[0.9, 0.05, 0.05], version=3,
        latency_ms=1.7,
    )  # fmt: skip
    err = c.InferResponse(
        id="r2", device="cam-1", ts=1.0, error={"code": "shape", "message": "expected 4 values"}
    )
    assert_valid("infer.res", ok.to_dict())
    assert_valid("infer.res", err.to_dict())
    assert_invalid("infer.res", {**ok.to_dict(), "error": {"code": "x", "message": "y"}})
    assert_invalid("infer.res", {k: v for k, v in ok.to_dict().items() if k != "scores"})


def test_reference_document() -> None:
    ref = make_reference(np.random.default_rng(0))
    assert_valid("reference", ref)
    assert_invalid("reference", {**ref, "inputs": {"granularity": "pixel", "histograms": []}})


def test_payloads_of_a_running_agent(tmp_path: Path) -> None:
    """The agent itself (no model yet) publishes only schema-valid payloads."""
    from edge.agent import Agent, AgentConfig
    from edge.messaging import MemoryBroker, MemoryTransport

    broker = MemoryBroker()
    agent = Agent(
        AgentConfig(device_id="cam-9", data_dir=tmp_path, telemetry_interval=3600),
        transport=MemoryTransport(broker, "agent"),
    )
    agent.start()
    try:
        agent.emit("info", None, "hello", detail={"n": 1})
        agent.publish_telemetry()
        deadline = time.monotonic() + 10
        while agent.outbox.stats()["queued"] and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        agent.stop(graceful=False)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for msg in broker.messages("edgekit/v1/cam-9/#"):
        _device, kind = c.parse_topic(msg.topic)
        by_kind.setdefault(kind, []).append(json.loads(msg.payload))
    assert {"status", "telemetry", "events"} <= set(by_kind)
    names = {"status": "status", "telemetry": "telemetry", "events": "event"}
    for kind, name in names.items():
        for obj in by_kind[kind]:
            assert_valid(name, obj)
    assert any(o["state"] == "offline" for o in by_kind["status"])  # the will
