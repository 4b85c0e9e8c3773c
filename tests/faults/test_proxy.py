"""The fault proxy itself, against a loopback echo server: pass, latency per direction,
a held partition (delivered on heal), a dropping partition and cut (connections reset)."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.faults.proxy import FaultProxy
from tests.waiting import wait_for


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    p = FaultProxy(server.server_address[1])
    yield p
    p.close()
    server.shutdown()
    server.server_close()


def connect(p: FaultProxy, timeout: float = 5.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", p.port), timeout=timeout)
    s.settimeout(timeout)
    return s


def echo(s: socket.socket, data: bytes) -> bytes:
    got = b""
    try:
        s.sendall(data)
        while len(got) < len(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except ConnectionError:  # reset: the same as closed, for these tests
        pass
    return got


def closed(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionError:
        return True


def test_pass_and_latency(proxy: FaultProxy) -> None:
    s = connect(proxy)
    assert echo(s, b"hello") == b"hello"
    proxy.latency(up=0.15, down=0.1)
    t0 = time.monotonic()
    assert echo(s, b"slow") == b"slow"
    assert time.monotonic() - t0 >= 0.25  # both directions delayed (a lower bound only)
    proxy.heal()
    assert echo(s, b"again") == b"again"
    s.close()


def test_held_partition_delivers_on_heal(proxy: FaultProxy) -> None:
    s = connect(proxy)
    assert echo(s, b"a") == b"a"
    proxy.partition("hold")
    s.sendall(b"held")
    s.settimeout(0.3)
    with pytest.raises(TimeoutError):
        s.recv(10)  # nothing comes back while partitioned
    fresh = connect(proxy)  # accepted, never connected upstream while partitioned
    before = proxy.stats.connected
    proxy.heal()
    s.settimeout(5)
    assert s.recv(10) == b"held"
    assert echo(fresh, b"late") == b"late"
    assert proxy.stats.connected == before + 1
    s.close()
    fresh.close()


def test_drop_partition_and_cut_reset_connections(proxy: FaultProxy) -> None:
    s = connect(proxy)
    assert echo(s, b"a") == b"a"
    proxy.partition("drop")
    wait_for(lambda: not proxy.stats.open, 5, "connections reset by the partition")
    assert echo(s, b"x") == b""  # the connection is gone
    refused = connect(proxy)
    assert closed(refused)  # new connections are closed at once
    proxy.heal()
    t = connect(proxy)
    assert echo(t, b"b") == b"b"
    proxy.cut()
    assert closed(t) and proxy.stats.reset >= 2
    for sock in (s, refused, t):
        sock.close()


def test_bad_arguments(proxy: FaultProxy) -> None:
    with pytest.raises(ValueError, match="hold"):
        proxy.partition("sideways")
    with pytest.raises(ValueError, match="negative"):
        proxy.latency(-1)
