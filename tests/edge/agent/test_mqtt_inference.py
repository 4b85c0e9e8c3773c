"""edge/agent/mqtt_inference.py: requests answered off the dispatcher, a stuck worker replaced,
back-pressure answered with ``overloaded`` (in-memory broker, stand-in models)."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import pytest

from edge import contract as c
from edge.agent.mqtt_inference import MqttInference
from edge.contract import Manifest
from edge.messaging.memory import MemoryBroker, MemoryTransport
from edge.serving import ModelServer
from tests.edge.serving_fakes import BlockingPredictor, Outcomes, digit, served
from tests.waiting import wait_for

DEV = "mq-1"


class Rig:
    def __init__(self, manifest: Manifest, predictor: BlockingPredictor, **kw: Any) -> None:
        self.broker = MemoryBroker()
        self.transport = MemoryTransport(self.broker, "agent")
        self.outcomes = Outcomes()
        self.server = ModelServer(self.outcomes, timeout=kw.pop("timeout", 5.0))
        self.server.swap(served(manifest, predictor))
        self.malformed: list[str] = []
        self.rejected: list[str] = []
        self.outcomes.on_rejection = self.rejected.append  # type: ignore[method-assign,assignment]
        kw.setdefault("max_pending", 256)
        self.inference = MqttInference(
            DEV, self.transport, self.server, self.server.predict, self.malformed.append, **kw
        )
        self.inference.subscribe()
        self.transport.connect()
        self.client = MemoryTransport(self.broker, "client")
        self.client.connect()

    def send(self, rid: str) -> None:
        body = {"id": rid, "inputs": digit().tolist()}
        self.client.publish(c.topic(DEV, c.INFER_REQ), json.dumps(body).encode(), qos=1)

    def responses(self) -> dict[str, dict[str, Any]]:
        return {
            (r := json.loads(m.payload))["id"]: r
            for m in self.broker.messages(c.topic(DEV, c.INFER_RES))
        }

    def close(self) -> None:
        self.inference.close()
        self.server.close()


def test_the_dispatcher_never_waits_for_the_model(digits_manifest: Manifest) -> None:
    predictor = BlockingPredictor()
    rig = Rig(digits_manifest, predictor)
    try:
        t = threading.Thread(target=rig.send, args=("a",))
        t.start()
        t.join(2)  # delivery is synchronous in memory: publish returns once handled
        assert not t.is_alive()
        assert wait_for(lambda: predictor.threads) == ["mqtt-inference"]
        predictor.release.set()
        assert wait_for(lambda: rig.responses().get("a"))["label"] == "3"
    finally:
        predictor.release.set()
        rig.close()


def test_a_stuck_worker_is_replaced_and_its_queue_moves(
    digits_manifest: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edge.agent.mqtt_inference as mi

    monkeypatch.setattr(mi, "STUCK_GRACE_S", 0.1)
    predictor = BlockingPredictor()  # cannot be interrupted: the first request hangs
    rig = Rig(digits_manifest, predictor, timeout=0.1)
    try:
        rig.send("stuck")
        wait_for(lambda: predictor.threads)
        rig.send("queued")  # behind the stuck one, on the same worker
        # no other request arrives: the watcher replaces the stuck worker by itself, and
        # the queued request, on the new worker, finds the model still busy: timeout
        got = wait_for(lambda: rig.responses().get("queued"), timeout=10)
        assert got["error"]["code"] == "timeout"
        assert rig.inference._worker.name == "mqtt-inference-2"
        rig.send("later")
        assert wait_for(lambda: rig.responses().get("later"))["error"]["code"] == "timeout"
        predictor.release.set()
        stuck = wait_for(lambda: rig.responses().get("stuck"))
        assert stuck["error"]["code"] == "timeout"  # answered late, but answered
        rig.send("after")
        assert wait_for(lambda: rig.responses().get("after"))["label"] == "3"
    finally:
        predictor.release.set()
        rig.close()


def test_beyond_max_pending_requests_are_answered_overloaded(digits_manifest: Manifest) -> None:
    predictor = BlockingPredictor()
    rig = Rig(digits_manifest, predictor, max_pending=2)
    try:
        rig.send("running")
        wait_for(lambda: predictor.threads)
        for rid in ("q1", "q2", "over"):
            rig.send(rid)
        over = wait_for(lambda: rig.responses().get("over"))
        assert over["error"]["code"] == "overloaded" and "2 requests" in over["error"]["message"]
        assert rig.rejected == ["overloaded"]
        rig.client.publish(c.topic(DEV, c.INFER_REQ), b"not json", qos=1)  # no id to answer
        assert rig.malformed == ["request dropped while overloaded"]
        predictor.release.set()
        got = wait_for(lambda: (r := rig.responses()).keys() >= {"running", "q1", "q2"} and r)
        assert all(got[k]["label"] == "3" for k in ("running", "q1", "q2"))
        assert np.isclose(sum(got["q1"]["scores"]), 1.0)
    finally:
        predictor.release.set()
        rig.close()


def test_waiting_payload_bytes_are_bounded_too(
    digits_manifest: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edge.agent.mqtt_inference as mi

    predictor = BlockingPredictor()
    rig = Rig(digits_manifest, predictor)
    try:
        rig.send("running")
        wait_for(lambda: predictor.threads)
        one = len(json.dumps({"id": "q1", "inputs": digit().tolist()}).encode())
        monkeypatch.setattr(mi, "MAX_PENDING_BYTES", int(one * 2.5))  # the running one + one
        rig.send("q1")
        rig.send("q2")
        assert wait_for(lambda: rig.responses().get("q2"))["error"]["code"] == "overloaded"
        predictor.release.set()
        assert wait_for(lambda: rig.responses().get("q1"))["label"] == "3"
        assert rig.inference._pending_bytes == 0  # released as requests are answered
    finally:
        predictor.release.set()
        rig.close()


def test_request_ids_come_back_with_their_json_type(digits_manifest: Manifest) -> None:
    """1006 comes back as 1006 and "1006" as "1006", on every path that answers: a
    prediction, a bad request and an overloaded refusal."""
    predictor = BlockingPredictor()
    predictor.release.set()
    rig = Rig(digits_manifest, predictor)
    req = c.topic(DEV, c.INFER_REQ)
    try:
        for rid in (1006, "1006", 2**70):
            body = {"id": rid, "inputs": digit().tolist()}
            rig.client.publish(req, json.dumps(body).encode(), qos=1)
        rig.client.publish(req, json.dumps({"id": 7, "inputs": "not a list"}).encode(), qos=1)
        raw = wait_for(lambda: len(r := rig.broker.messages(c.topic(DEV, c.INFER_RES))) >= 4 and r)
        ids = [json.loads(m.payload)["id"] for m in raw]
        assert sorted(ids, key=repr) == sorted([1006, "1006", 2**70, 7], key=repr)
        by_id = {(type(r["id"]), r["id"]): r for r in map(json.loads, (m.payload for m in raw))}
        assert by_id[(int, 1006)]["label"] == "3" and by_id[(str, "1006")]["label"] == "3"
        assert by_id[(int, 7)]["error"]["code"]
        assert b'"id":1006,' in raw[0].payload  # on the wire, not only after decoding
        # the overloaded path: the queue is full while a request is running
        predictor.release.clear()
        rig.inference.max_pending = 1
        rig.send("running")
        wait_for(lambda: len(predictor.threads) >= 4)
        rig.send("queued")
        rig.client.publish(req, json.dumps({"id": 42, "inputs": [1]}).encode(), qos=1)
        over = wait_for(lambda: next((json.loads(m.payload) for m in rig.broker.messages(
            c.topic(DEV, c.INFER_RES)) if json.loads(m.payload)["id"] == 42), None))  # fmt: skip
        assert over["error"]["code"] == "overloaded" and isinstance(over["id"], int)
        predictor.release.set()
    finally:
        predictor.release.set()
        rig.close()
