"""Inference over MQTT: a request on ``edgekit/v1/<id>/infer/req``, the answer on
``.../infer/res``.

Every request that carries a usable ``id`` is answered, with a prediction or an error
object (``code``, ``message``); one that cannot be answered (not JSON, not an object, no
id) is logged and counted as ``rejected_inputs.malformed`` in telemetry. Nothing a client
sends makes the handler raise. :func:`error_code` is shared with the local HTTP API.

Requests are answered on a worker thread of their own, in arrival order, so the transport's
dispatcher (which also carries deploy commands) never waits for a model. A worker whose
call outlives the time limit by ``STUCK_GRACE_S`` (a runtime that cannot be interrupted) is
replaced and the requests queued behind it move to the new one (a watcher thread checks,
so queued requests are answered even when no new one arrives). At most ``max_pending``
requests, and ``MAX_PENDING_BYTES`` of payload, wait; beyond that a request is answered at
once with error ``overloaded``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from edge import contract as c
from edge.contract import InferRequest, InferResponse
from edge.errors import BackendError, ContractError, EdgekitError, InputError
from edge.messaging import Transport
from edge.runtime import Prediction
from edge.serving import InferenceTimeoutError, ModelServer, NoModelError, SerialWorker

log = logging.getLogger("edgekit.agent")
STUCK_GRACE_S = 1.0
MAX_PENDING_BYTES = 32 * 1024 * 1024  # payloads waiting: up to 1 MiB each


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
        *,
        max_pending: int,
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
        self.max_pending = max_pending
        self._workers = 1
        self._worker = SerialWorker("mqtt-inference")
        self._lock = threading.Lock()  # the worker swap, and the bytes waiting
        self._pending_bytes = 0
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="mqtt-inference-watch",
                                         daemon=True)  # fmt: skip
        self._watcher.start()

    def subscribe(self) -> None:
        self.transport.subscribe(c.topic(self.device, c.INFER_REQ), self.enqueue, qos=1)

    def close(self) -> None:
        self._stop.set()
        self._worker.stop()

    def enqueue(self, topic: str, payload: bytes) -> None:
        """The transport's handler: pass the request to the inference worker."""
        worker = self._replace_if_stuck()
        size = len(payload)
        with self._lock:
            full = (
                worker.pending() >= self.max_pending
                or self._pending_bytes + size > MAX_PENDING_BYTES
            )
            if not full:
                self._pending_bytes += size
        if full:
            self.server.observer.on_rejection("overloaded")
            self._refuse(payload)
            return
        worker.submit(lambda: self._handle(topic, payload))

    def _handle(self, topic: str, payload: bytes) -> None:
        """One request on the worker; nothing it raises may end the worker silently."""
        try:
            self.on_request(topic, payload)
        except Exception:
            log.exception("answering an inference request failed")
        finally:
            with self._lock:
                self._pending_bytes -= len(payload)

    def _replace_if_stuck(self) -> SerialWorker:
        """The worker to use: a fresh one (taking the queue) if the current one is stuck
        in a call past the time limit plus ``STUCK_GRACE_S``."""
        with self._lock:
            worker = self._worker
            if worker.busy_for() <= self.server.timeout + STUCK_GRACE_S:
                return worker
            self._workers += 1
            self._worker = SerialWorker(f"mqtt-inference-{self._workers}")
            moved = worker.hand_over(self._worker)
        log.error("inference worker stuck for %.1f s; a new one takes its %d queued "
                  "request(s)", worker.busy_for(), moved)  # fmt: skip
        return self._worker

    def _watch(self) -> None:
        """Check for a stuck worker even while no request arrives (requests queued behind
        it must still be answered)."""
        while not self._stop.wait(min(1.0, max(0.05, self.server.timeout / 2))):
            self._replace_if_stuck()

    def _refuse(self, payload: bytes) -> None:
        """Answer ``overloaded`` without running the model (when the id can be read)."""
        try:
            rid = InferRequest.id_of(c.decode_json(payload))
        except ContractError:
            rid = None
        if rid is not None:
            error = {
                "code": "overloaded",
                "message": f"{self.max_pending} requests are already waiting; try again later",
            }
            self.reply(InferResponse(rid, self.device, time.time(), error=error))
        else:
            self.on_malformed("request dropped while overloaded")

    def on_request(self, _topic: str, payload: bytes) -> None:
        try:
            obj = c.decode_json(payload)
        except ContractError as exc:
            self.on_malformed(str(exc))
            return
        try:
            req = InferRequest.parse(obj)
        except ContractError as exc:
            rid = InferRequest.id_of(obj)
            if rid is not None:
                error = {"code": "bad_request", "message": str(exc)}
                self.reply(InferResponse(rid, self.device, time.time(), error=error))
            else:
                self.on_malformed(str(exc))
            return
        self.reply(self.answer(req))

    def answer(self, req: InferRequest) -> InferResponse:
        """The response to one request: a prediction (``predictions`` for a batch) or an
        error object, never an exception."""
        model = self.server.current
        try:
            if req.batch:
                preds = self.server.predict_batch(req.inputs, req.label)
            else:
                pred = self.predict(req.inputs, req.label)
        except EdgekitError as exc:
            error = {"code": error_code(exc), "message": str(exc)}
            return InferResponse(req.id, self.device, time.time(), error=error)
        if req.batch:
            return InferResponse(
                id=req.id,
                device=self.device,
                ts=time.time(),
                version=model.version if model else None,
                latency_ms=round(sum(p.latency_ms for p in preds), 4),
                predictions=[p.to_dict() for p in preds],
            )
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
