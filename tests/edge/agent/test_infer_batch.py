"""The batch form of ``infer/req`` (and of the local HTTP API's /v1/predict): one runtime
call for a list of inputs, answers in order, limits and errors that say what is wrong. A
real model (the digits reference bundle on ONNX Runtime) serves; payloads are checked
against the published JSON Schemas."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge import contract as c
from edge.agent.mqtt_inference import MqttInference
from edge.bundle import Slot
from edge.messaging.memory import MemoryBroker, MemoryTransport
from edge.runtime import Model, load_model
from edge.serving import LoadedModel, ModelServer
from tests.edge.contract.test_schemas import assert_invalid, assert_valid
from tests.edge.serving_fakes import Outcomes
from tests.waiting import wait_for

MODELS = Path(__file__).resolve().parents[3] / "models"
DIGITS, PUB = MODELS / "digits.ekb", MODELS / "dev-signing.pub"
pytestmark = pytest.mark.skipif(not DIGITS.exists(), reason="models/digits.ekb not built")
DEV = "batch-1"


def digit(seed: int) -> list[list[float]]:
    return np.random.default_rng(seed).integers(0, 17, (8, 8)).astype(float).tolist()


@pytest.fixture(scope="module")
def model() -> Iterator[Model]:
    with load_model(DIGITS, PUB, runtime="onnxruntime", precision="fp32") as m:
        yield m


class Rig:
    """A server with the real model and the MQTT handler on an in-memory broker."""

    def __init__(self, model: Model) -> None:
        self.outcomes = Outcomes()
        self.server = ModelServer(self.outcomes)
        slot = Slot(model.manifest.name, model.manifest.version, model.bundle_dir.parent, {})
        self.server.swap(LoadedModel(slot, model.manifest, model, "onnxruntime", "fp32"))
        self.broker = MemoryBroker()
        transport = MemoryTransport(self.broker, "agent")
        self.inference = MqttInference(
            DEV, transport, self.server, self.server.predict, lambda _m: None, max_pending=16
        )
        self.inference.subscribe()
        transport.connect()
        self.client = MemoryTransport(self.broker, "client")
        self.client.connect()

    def ask(self, body: dict[str, Any]) -> dict[str, Any]:
        inputs = body["inputs"]
        if body.get("batch") is True and isinstance(inputs, list) and 1 <= len(inputs) <= 64:
            assert_valid("infer.req", body)  # what the schema accepts, the agent answers
        self.client.publish(c.topic(DEV, c.INFER_REQ), json.dumps(body).encode(), qos=1)
        res: dict[str, Any] = wait_for(
            lambda: next(
                (
                    r
                    for m in self.broker.messages(c.topic(DEV, c.INFER_RES))
                    if (r := json.loads(m.payload))["id"] == body["id"]
                ),
                None,
            )
        )
        assert_valid("infer.res", res)
        return res

    def close(self) -> None:
        self.inference.close()
        self.server.close()


@pytest.fixture
def rig(model: Model) -> Iterator[Rig]:
    r = Rig(model)
    yield r
    r.close()


def test_a_batch_is_answered_in_order_like_single_requests(rig: Rig) -> None:
    inputs = [digit(i) for i in range(5)]
    singles = [rig.ask({"id": f"s{i}", "inputs": x}) for i, x in enumerate(inputs)]
    res = rig.ask({"id": 9, "batch": True, "inputs": inputs, "label": ["1", 2, None, "3", "4"]})
    preds = res["predictions"]
    assert res["id"] == 9 and res["version"] == 1 and "label" not in res and len(preds) == 5
    for single, pred in zip(singles, preds, strict=True):
        assert pred["label"] == single["label"] and pred["index"] == int(single["label"])
        assert np.allclose(pred["scores"], single["scores"], atol=1e-6)
    assert rig.outcomes.predictions == 10  # each sample of the batch is recorded
    assert c.InferResponse.parse(res).predictions == preds


def test_batch_limits_and_errors_are_clear(rig: Rig) -> None:
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"inputs": [digit(0)] * (c.MAX_INFER_BATCH + 1)}, "bad_request", "1 to 64 inputs, got 65"),
        ({"inputs": []}, "bad_request", "got 0 inputs"),
        ({"inputs": {"a": 1}}, "bad_request", "got no list"),
        ({"inputs": [digit(0)] * 2, "label": ["1"]}, "bad_request", "one label per input"),
        ({"inputs": [digit(0), [1, 2, 3], digit(1)]}, "shape", "sample 1"),
        ({"inputs": [digit(0), "seven"]}, "dtype", "sample 1"),
    ]
    for i, (body, code, text) in enumerate(cases):
        res = rig.ask({"id": f"bad{i}", "batch": True, **body})
        assert res["error"]["code"] == code and text in res["error"]["message"], res
    res = rig.ask({"id": "flag", "batch": "yes", "inputs": [digit(0)]})
    assert res["error"]["code"] == "bad_request" and "true or false" in res["error"]["message"]
    assert rig.outcomes.predictions == 0  # nothing ran for a refused batch
    assert rig.outcomes.rejections == ["shape", "dtype"]


def test_request_schema_bounds_the_batch() -> None:
    ok = {"id": 1, "batch": True, "inputs": [[1.0]], "label": ["a"]}
    assert_valid("infer.req", ok)
    assert_invalid("infer.req", {**ok, "inputs": []})
    assert_invalid("infer.req", {**ok, "inputs": [[1.0]] * 65})
    assert_invalid("infer.req", {**ok, "label": "a"})
    assert_valid("infer.req", {"id": 1, "inputs": [[1.0]] * 65})  # not a batch: one input
    res = c.InferResponse(1, "d", 1.0, predictions=[{"label": "a", "index": 0, "scores": [1.0],
                                                      "latency_ms": 0.1}])  # fmt: skip
    assert_valid("infer.res", res.to_dict())
    assert_invalid("infer.res", {**res.to_dict(), "label": "a", "scores": [1.0]})
    assert_invalid("infer.res", {**res.to_dict(), "error": {"code": "x", "message": "y"}})


def test_http_api_takes_the_batch_form(model: Model, tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    from edge.agent import Agent, AgentConfig
    from edge.agent.http_api import LocalHttpApi

    agent = Agent(
        AgentConfig(device_id="http-b", data_dir=tmp_path, telemetry_interval=3600),
        transport=MemoryTransport(MemoryBroker(), "agent"),
    )
    slot = Slot(model.manifest.name, model.manifest.version, model.bundle_dir.parent, {})
    agent.server.swap(LoadedModel(slot, model.manifest, model, "onnxruntime", "fp32"))
    api = LocalHttpApi(agent)
    api.start()

    def post(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(f"{api.url}/v1/predict", json.dumps(body).encode())
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    try:
        status, body = post({"batch": True, "inputs": [digit(0), digit(1)]})
        assert status == 200 and len(body["predictions"]) == 2 and body["version"] == 1
        assert body["predictions"][1]["label"] == agent.predict(digit(1)).label
        status, body = post({"batch": True, "inputs": [digit(0)] * 65})
        assert status == 400 and body["error"]["code"] == "bad_request"
        status, body = post({"batch": True, "inputs": [digit(0), [1]]})
        assert status == 400 and body["error"]["code"] == "shape"
        assert "sample 1" in body["error"]["message"]
    finally:
        api.stop()
        agent.server.close()
