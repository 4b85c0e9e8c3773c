"""Inference over MQTT: a request on ``edgekit/v1/<id>/infer/req``, the answer on
``.../infer/res``.

Every request that carries a usable ``id`` is answered, with a prediction or an error
object (``code``, ``message``); one that cannot be answered (not JSON, not an object, no
id) is logged and counted as ``rejected_inputs.malformed`` in telemetry. Nothing a client
sends makes the handler raise. :func:`error_code` is shared with the local HTTP API.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from edge import contract as c
from edge.contract import InferRequest, InferResponse
from edge.errors import BackendError, ContractError, EdgekitError, InputError
from edge.predictor import Prediction
from edge.serving import InferenceTimeoutError, ModelServer, NoModelError
from edge.transport_api import Transport

log = logging.getLogger("edgekit.agent")


def error_code(exc: EdgekitError) -> str:
    """The wire error code of an exception raised while predicting."""
    if isinstance(exc, InputError):
        return exc.code
    if isinstance(exc, NoModelError):
        return "no_model"
    if isinstance(exc, InferenceTimeoutError):
        return "timeout"
    if isinstance(exc, BackendError):
        return "runtime"
    return "error"


class MqttInference:
    """Parses requests, answers them through ``predict`` and publishes the responses."""

    def __init__(
        self,
        device: str,
        transport: Transport,
        server: ModelServer,
        predict: Callable[[Any, Any], Prediction],
        on_malformed: Callable[[str], None],
        response_qos: int = 0,
    ) -> None:
        self.device = device
        # QoS 0 by default: a reply is only useful while the requester waits, and a QoS 1
        # reply makes a broker with Nagle on (Mosquitto's default) hold the *next* request
        # until our delayed ACK, ~40 ms. Requesters that need delivery retry by id.
        self.response_qos = response_qos
        self.transport = transport
        self.server = server
        self.predict = predict
        self.on_malformed = on_malformed

    def subscribe(self) -> None:
        self.transport.subscribe(c.topic(self.device, c.INFER_REQ), self.on_request, qos=1)

    def on_request(self, _topic: str, payload: bytes) -> None:
        try:
            obj = c.decode_json(payload)
        except ContractError as exc:
            self.on_malformed(str(exc))
            return
        try:
            req = InferRequest.parse(obj)
        except ContractError as exc:
            rid = obj.get("id")
            if isinstance(rid, (str, int)) and not isinstance(rid, bool) and rid != "":
                error = {"code": "bad_request", "message": str(exc)}
                self.reply(InferResponse(str(rid), self.device, time.time(), error=error))
            else:
                self.on_malformed(str(exc))
            return
        self.reply(self.answer(req))

    def answer(self, req: InferRequest) -> InferResponse:
        """The response to one request: a prediction or an error object, never an exception."""
        model = self.server.current
        try:
            pred = self.predict(req.inputs, req.label)
        except EdgekitError as exc:
            error = {"code": error_code(exc), "message": str(exc)}
            return InferResponse(req.id, self.device, time.time(), error=error)
        return InferResponse(
            id=req.id,
            device=self.device,
            ts=time.time(),
            label=pred.label,
            scores=pred.scores,
            version=model.version if model else None,
            latency_ms=pred.latency_ms,
        )

    def reply(self, res: InferResponse) -> None:
        try:
            payload = c.encode_json(res.to_dict())
            self.transport.publish(
                c.topic(self.device, c.INFER_RES), payload, qos=self.response_qos
            )
        except (EdgekitError, ValueError) as exc:
            log.error("cannot send inference response %s: %s", res.id, exc)
