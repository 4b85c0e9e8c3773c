"""Request bodies are refused before they are read: a real HTTP server (werkzeug's, in a
thread) and a raw socket that sends headers only, so a hub that read the body first would
hang the test instead of answering."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from cloud.hub.http.auth import create_api_token

MIB = 1024 * 1024


@pytest.fixture
def server(app: Any) -> Iterator[tuple[str, int]]:
    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", srv.server_port
    finally:
        srv.shutdown()


def _headers_only(addr: tuple[str, int], head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send a request head (and maybe the start of a body); return status and response."""
    with socket.create_connection(addr, timeout=5) as sock:
        sock.sendall(head.encode() + b"\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):  # a hub reading 600 MiB first would time out here
            data += chunk  # the hub closes the connection after refusing
    status = int(data.split(b" ", 2)[1])
    return status, data


def _upload_head(length: int | None, auth: str = "", chunked: bool = False) -> str:
    lines = [
        "POST /api/v1/models HTTP/1.1",
        "Host: hub",
        "Content-Type: multipart/form-data; boundary=xx",
    ]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if chunked:
        lines.append("Transfer-Encoding: chunked")
    if auth:
        lines.append(f"Authorization: Bearer {auth}")
    return "\r\n".join(lines) + "\r\n"


def test_a_600_mib_unauthenticated_upload_is_refused_unread(server: tuple[str, int]) -> None:
    status, data = _headers_only(server, _upload_head(600 * MIB))
    assert status == 413 and b'"too_large"' in data


def test_an_unauthenticated_upload_under_the_limit_is_401_unread(server: tuple[str, int]) -> None:
    status, data = _headers_only(server, _upload_head(100 * MIB))
    assert status == 401 and b'"unauthorized"' in data
    status, _ = _headers_only(server, _upload_head(100 * MIB, auth="ekt_forged"))
    assert status == 401


def test_a_viewer_upload_is_403_unread(app: Any, server: tuple[str, int]) -> None:
    with app.extensions["edgekit_hub"].db.session() as s:
        viewer = create_api_token(s, "viewer")
    status, data = _headers_only(server, _upload_head(100 * MIB, auth=viewer))
    assert status == 403 and b'"forbidden"' in data


def test_json_bodies_have_a_small_limit(app: Any, server: tuple[str, int]) -> None:
    with app.extensions["edgekit_hub"].db.session() as s:
        op = create_api_token(s, "operator")
    head = (
        "POST /api/v1/rollouts HTTP/1.1\r\nHost: hub\r\nContent-Type: application/json\r\n"
        f"Authorization: Bearer {op}\r\nContent-Length: {8 * MIB}\r\n"
    )
    status, _ = _headers_only(server, head)
    assert status == 413


def test_chunked_bodies_are_cut_at_the_limit(app: Any, client: Any) -> None:
    """A body without Content-Length (chunked, the server terminates the stream) is read
    only up to the route's limit, then 413."""
    import io

    with app.extensions["edgekit_hub"].db.session() as s:
        op = {"Authorization": f"Bearer {create_api_token(s, 'operator')}"}
    big = io.BytesIO(b'{"model": "' + b"a" * (3 * MIB) + b'"}')
    resp = client.post(
        "/api/v1/rollouts",
        input_stream=big,
        headers={**op, "Content-Type": "application/json", "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert resp.status_code == 413
    assert big.tell() <= 2 * MIB  # stopped near the 1 MiB limit, not read to the end
