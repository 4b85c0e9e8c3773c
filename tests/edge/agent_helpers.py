"""Helpers for agent tests: a file server with Range support, as the hub serves bundles."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class FileServer:
    """Serves files from a dict ``{url path: Path}`` with byte ranges, like the hub does.

    ``cut_after``: close the connection after sending this many body bytes (once per
    request) to simulate a flaky link; ``token``: require ``Authorization: Bearer token``.
    """

    def __init__(self, token: str | None = None) -> None:
        self.files: dict[str, Path] = {}
        self.token = token
        self.cut_after: int | None = None
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(
                    {"path": self.path, "range": self.headers.get("Range"),
                     "auth": self.headers.get("Authorization")}
                )  # fmt: skip
                if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                    self.send_error(401)
                    return
                path = server.files.get(self.path)
                if path is None:
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = 0
                rng = self.headers.get("Range")
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None and len(body) > server.cut_after:
                    self.wfile.write(body[: server.cut_after])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )  # shutdown() waits up to one poll interval: keep teardown quick
        self.thread.start()

    def add(self, path: Path) -> str:
        url_path = f"/bundles/{path.name}"
        self.files[url_path] = path
        return f"http://127.0.0.1:{self.port}{url_path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
