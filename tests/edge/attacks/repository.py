"""A simulated bundle repository for attack tests (python-tuf's way): a real local HTTP
server that serves bundles honestly, or the way an attacker's server would.

Each route has a ``mode``:

* ``file``: the bytes, with byte ranges and an honest Content-Length (like the hub);
* ``endless``: 200 with no Content-Length, then the bytes and garbage for ever;
* ``length``: an honest body under a Content-Length that lies (``length``; None: no
  Content-Length, the body ends when the connection closes);
* ``trickle``: headers at once, then one body byte every ``interval`` seconds;
* ``slowloris``: the whole response, status line and headers too, a byte at a time;
* ``redirect``: 302 to ``location``.

Every request is recorded with its Authorization header, so a test can show that a token
never reached a server it must not reach.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Route:
    data: bytes
    mode: str = "file"
    length: int | None = None
    interval: float = 0.5
    location: str | None = None


class _Handler(BaseHTTPRequestHandler):
    """Serves the routes of ``self.server.repo`` in their modes."""

    protocol_version = "HTTP/1.1"

    @property
    def repo(self) -> Repository:
        return self.server.repo  # type: ignore[attr-defined]

    def log_message(self, *_args: Any) -> None:
        pass

    def do_GET(self) -> None:
        repo = self.repo
        repo.requests.append(
            {"path": self.path, "range": self.headers.get("Range"),
             "auth": self.headers.get("Authorization")}
        )  # fmt: skip
        if repo.token and self.headers.get("Authorization") != f"Bearer {repo.token}":
            self._status(401)
            return
        route = repo.routes.get(self.path)
        if route is None:
            self._status(404)
            return
        with contextlib.suppress(OSError):  # the agent hung up: right, with a hostile server
            getattr(self, f"_{route.mode}")(route)
        self.close_connection = True

    def _status(self, code: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.close_connection = True

    def _write(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()
        self.repo.sent[self.path] = self.repo.sent.get(self.path, 0) + len(data)

    def _file(self, route: Route) -> None:
        data, start = route.data, 0
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                self._status(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self._write(data[start:])

    def _endless(self, route: Route) -> None:
        self.send_response(200)
        self.send_header("Connection", "close")
        self.end_headers()
        self._write(route.data)
        junk = b"\0" * 65536
        while not self.repo.stopping.is_set():
            self._write(junk)

    def _length(self, route: Route) -> None:
        self.send_response(200)
        if route.length is not None:
            self.send_header("Content-Length", str(route.length))
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        self._write(route.data)

    def _trickle(self, route: Route) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(route.data)))
        self.end_headers()
        self._drip(route.data, route.interval)

    def _slowloris(self, route: Route) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(route.data)}\r\n\r\n"
        self._drip(head.encode() + route.data, route.interval)

    def _drip(self, data: bytes, interval: float) -> None:
        for i in range(len(data)):
            if self.repo.stopping.wait(interval):
                return
            self._write(data[i : i + 1])

    def _redirect(self, route: Route) -> None:
        self._status(302, {"Location": route.location or "/"})


class Repository:
    """One HTTP server on 127.0.0.1; ``origin`` is its ``http://127.0.0.1:PORT``."""

    def __init__(self, token: str | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.token = token
        self.requests: list[dict[str, Any]] = []
        self.sent: dict[str, int] = {}  # url path -> body bytes written
        self.stopping = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.repo = self  # type: ignore[attr-defined]
        self.httpd.daemon_threads = True
        self.port = int(self.httpd.server_address[1])
        self.origin = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def add(self, data: bytes | Path, name: str, mode: str = "file", **kw: Any) -> str:
        """Serve ``data`` at ``/bundles/<name>``; returns its URL."""
        raw = data.read_bytes() if isinstance(data, Path) else data
        self.routes[f"/bundles/{name}"] = Route(raw, mode, **kw)
        return f"{self.origin}/bundles/{name}"

    def hits(self) -> list[dict[str, Any]]:
        return list(self.requests)

    def close(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def repack(src: Path, out: Path, change: Callable[[str, bytes], bytes]) -> Path:
    """A copy of bundle ``src`` with every member's bytes passed through ``change(name,
    data)``: how an attacker edits a bundle without the signing key."""
    members: list[tuple[tarfile.TarInfo, bytes]] = []
    with tarfile.open(src, "r:gz") as tar:
        for member in tar:
            f = tar.extractfile(member)
            data = f.read() if f is not None else b""
            members.append((member, change(member.name, data) if member.isfile() else data))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for member, data in members:
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data) if member.isfile() else None)
    out.write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    return out


def flip_byte(data: bytes, at: int | None = None) -> bytes:
    """``data`` with one byte changed (the middle one by default)."""
    i = len(data) // 2 if at is None else at
    return data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :]


def elapsed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.monotonic()
    try:
        out: Any = fn()
    except Exception as exc:  # the caller looks at what was raised
        out = exc
    return time.monotonic() - t0, out
