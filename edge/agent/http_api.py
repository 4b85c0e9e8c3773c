"""Optional local HTTP endpoint for on-device clients, bound to 127.0.0.1 only.

* ``POST /v1/predict`` body ``{"inputs": ..., "label": optional}`` → 200 with ``label``,
  ``index``, ``scores``, ``latency_ms``, ``version``; 400 with ``{"error": {code, message}}``
  for a rejected input, 503 when no model can answer, 413 for a body over 16 MiB. With
  ``"batch": true``, ``inputs`` is a list of inputs (and ``label`` a list, if given) and
  the 200 carries ``predictions`` (one object as above per input) and ``version``.
* ``GET /v1/status`` → the status object the agent publishes (retained) on MQTT.
* ``GET /healthz`` → 200 ``{"ok": true}`` while a model is served, else 503.
* ``GET /metrics`` → Prometheus text (edge/agent/metrics.py; docs/agent.md lists the series).

Loopback only, on purpose: there is no authentication; remote clients use MQTT.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from edge.agent import metrics
from edge.agent.mqtt_inference import error_code
from edge.contract import InferRequest
from edge.errors import BackendError, ContractError, EdgekitError, InputError, TransportError

if TYPE_CHECKING:
    from edge.agent.agent import Agent

log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024 * 1024
HOST = "127.0.0.1"


class LocalHttpApi:
    """The HTTP server; ``port=0`` picks a free port (see :attr:`port`)."""

    def __init__(self, agent: Agent, port: int = 0) -> None:
        self.agent = agent
        handler = _make_handler(agent)
        try:
            self.httpd = ThreadingHTTPServer((HOST, port), handler)
        except OSError as exc:
            raise TransportError(f"cannot listen on {HOST}:{port}: {exc.strerror}") from exc
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="http", daemon=True
        )  # stop() waits up to one poll interval

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        log.info("local HTTP API on %s", self.url)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _make_handler(  # noqa: C901 - counts the nested handler's per-request checks
    agent: Agent,
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "edgekit-agent"
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:
            log.debug("http: " + fmt, *args)

        def _send(self, code: int, obj: dict[str, Any]) -> None:
            body = json.dumps(obj, allow_nan=False).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, code: int, err: str, message: str) -> None:
            self._send(code, {"error": {"code": err, "message": message}})

        def do_GET(self) -> None:
            if self.path == "/healthz":
                ok = agent.server.current is not None
                self._send(200 if ok else 503, {"ok": ok})
            elif self.path == "/v1/status":
                self._send(200, agent.status().to_dict())
            elif self.path == "/metrics":
                body = metrics.render(agent)
                self.send_response(200)
                self.send_header("Content-Type", metrics.CONTENT_TYPE_LATEST)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self._error(404, "not_found", f"no such endpoint {self.path}")

        def do_POST(self) -> None:
            if self.path != "/v1/predict":
                self._error(404, "not_found", f"no such endpoint {self.path}")
                return
            try:
                length = int(self.headers.get("Content-Length", ""))
            except ValueError:
                self._error(411, "length_required", "send a Content-Length header")
                return
            if length > MAX_BODY or length < 0:
                self.close_connection = True
                self._error(413, "too_large", f"body over {MAX_BODY} bytes")
                return
            try:
                obj = json.loads(self.rfile.read(length))
            except (ValueError, UnicodeDecodeError) as exc:
                self._error(400, "bad_request", f"body is not JSON: {exc}")
                return
            if not isinstance(obj, dict) or "inputs" not in obj:
                self._error(400, "bad_request", "body must be a JSON object with 'inputs'")
                return
            model = agent.server.current
            try:
                if obj.get("batch", False) is not False:
                    req = InferRequest.parse({"id": 1, **obj})  # the MQTT batch rules
                    preds = agent.server.predict_batch(req.inputs, req.label)
                    version = model.version if model else None
                    self._send(200, {"predictions": [p.to_dict() for p in preds],
                                     "version": version})  # fmt: skip
                    return
                pred = agent.predict(obj["inputs"], obj.get("label"))
            except ContractError as exc:
                self._error(400, "bad_request", str(exc))
                return
            except InputError as exc:
                self._error(400, exc.code, str(exc))
                return
            except BackendError as exc:
                self._error(503, error_code(exc), str(exc))
                return
            except EdgekitError as exc:
                self._error(400, "error", str(exc))
                return
            self._send(200, {**pred.to_dict(), "version": model.version if model else None})

    return Handler
