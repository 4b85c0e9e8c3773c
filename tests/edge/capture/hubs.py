"""A small real HTTP server speaking the sample upload endpoint, with scripted failures."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from edge.contract import SampleBatch
from edge.errors import ContractError

# (status, headers, body) for a request, or None to store it as the real hub would
Script = Callable[[dict[str, Any]], "tuple[int, dict[str, str], dict[str, Any]] | None"]


class SampleHub:
    """``POST /api/v1/devices/<id>/samples`` with a token check, idempotent by id."""

    def __init__(self, token: str = "dev-token", port: int = 0) -> None:
        self.token = token
        self.stored: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.script: Script = lambda _doc: None
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n)
                status, headers, body = hub.handle(
                    self.path, self.headers.get("Authorization"), raw
                )
                data = json.dumps(body).encode()
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def handle(
        self, path: str, auth: str | None, raw: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        if auth != f"Bearer {self.token}":
            return 401, {}, {"error": {"code": "unauthorized", "message": "bad token"}}
        doc = json.loads(raw)
        self.requests.append(doc)
        scripted = self.script(doc)
        if scripted is not None:
            return scripted
        try:
            batch, bad = SampleBatch.parse_lenient(doc)
        except ContractError as exc:
            return 400, {}, {"error": {"code": "invalid", "message": str(exc)}}
        if path != f"/api/v1/devices/{batch.device}/samples":
            return 403, {}, {"error": {"code": "forbidden", "message": path}}
        accepted: list[str] = []
        duplicates: list[str] = []
        for s in batch.samples:
            (duplicates if s.id in self.stored else accepted).append(s.id)
            self.stored[s.id] = s.to_dict()
        return 200, {}, {"accepted": accepted, "duplicates": duplicates, "rejected": bad}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
