"""download() against hostile servers: the declared size, the deadline, the .part file,
and where a URL may point (edge/install/origins.py)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.errors import InstallError
from edge.install import allowed_origins, check_origin, download, origin_of
from tests.edge.attacks.repository import Repository

DATA = bytes(range(256)) * 400  # 100 KiB, not a bundle: download() does not look inside


@pytest.fixture
def repo() -> Iterator[Repository]:
    r = Repository()
    yield r
    r.close()


def fetch(url: str, dest: Path, size: int = len(DATA), timeout: float = 10.0) -> Path:
    return download(url, dest, max_bytes=10**8, timeout=timeout, expected_size=size)


def test_exact_size_is_fetched(repo: Repository, tmp_path: Path) -> None:
    out = fetch(repo.add(DATA, "ok"), tmp_path / "b")
    assert out.read_bytes() == DATA and not (tmp_path / "b.part").exists()


def test_endless_body_is_refused_and_the_part_deleted(repo: Repository, tmp_path: Path) -> None:
    url = repo.add(DATA, "endless", mode="endless")
    with pytest.raises(InstallError, match=f"more than the declared {len(DATA)} bytes"):
        fetch(url, tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_a_body_shorter_than_declared_is_not_accepted(
    repo: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules["edge.install.download"], "RETRY_BASE_S", 0.01)
    url = repo.add(DATA[:1000], "closed")  # honest 1000 bytes, command says 2000
    with pytest.raises(InstallError, match="disagrees with the declared size 2000"):
        fetch(url, tmp_path / "b", size=2000)
    url = repo.add(DATA[:1000], "cut", mode="length", length=None)  # no length, then closed
    with pytest.raises(InstallError, match="closed after 1000 of 2000 bytes"):
        fetch(url, tmp_path / "b", size=2000)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("length", [len(DATA) + 1, len(DATA) - 1, 62 * 1024 * 1024])
def test_content_length_that_disagrees_is_refused(
    repo: Repository, tmp_path: Path, length: int
) -> None:
    url = repo.add(DATA, "lying", mode="length", length=length)
    with pytest.raises(InstallError, match=f"Content-Length {length} disagrees"):
        fetch(url, tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow  # waits for its 1.5 s deadline
@pytest.mark.parametrize("mode", ["trickle", "slowloris"])
def test_slow_retrieval_ends_at_the_deadline(repo: Repository, tmp_path: Path, mode: str) -> None:
    """1 byte every 0.5 s in the body, or in the status line and headers: cut at 1.5 s."""
    url = repo.add(DATA, "slow", mode=mode, interval=0.5)
    t0 = time.monotonic()
    with pytest.raises(InstallError, match=r"did not finish within 1\.5 s"):
        fetch(url, tmp_path / "b", timeout=1.5)
    took = time.monotonic() - t0
    assert 1.4 <= took < 3.5, took
    assert list(tmp_path.iterdir()) == []


def test_resume_with_a_range_not_asked_for_is_refused(tmp_path: Path) -> None:
    """A server answering ``Range: bytes=100-`` with bytes from 0 would corrupt the file."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Liar(BaseHTTPRequestHandler):
        def log_message(self, *_a: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(206)
            self.send_header("Content-Range", f"bytes 0-{len(DATA) - 1}/{len(DATA)}")
            self.send_header("Content-Length", str(len(DATA)))
            self.end_headers()
            self.wfile.write(DATA)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Liar)
    serve = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    serve.daemon = True
    serve.start()
    try:
        (tmp_path / "b.part").write_bytes(DATA[:100])
        with pytest.raises(InstallError, match="range that was not asked for"):
            fetch(f"http://127.0.0.1:{httpd.server_address[1]}/x", tmp_path / "b")
        assert list(tmp_path.iterdir()) == []
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_redirects_are_not_followed(repo: Repository, tmp_path: Path) -> None:
    other = Repository()
    try:
        url = repo.add(b"", "moved", mode="redirect", location=other.add(DATA, "x"))
        with pytest.raises(InstallError, match="redirects"):
            fetch(url, tmp_path / "b")
        assert other.hits() == []
    finally:
        other.close()


# ----------------------------------------------------------------------------- origins


HUB = "https://hub.example:8443"


@pytest.mark.parametrize(
    "url",
    [
        "https://hub.example:8443/api/v1/models/m/1/bundle",
        "https://HUB.example:8443/x",
        "https://hub.example:8443/x?y=1",
    ],
)
def test_origin_of_the_hub_is_allowed(url: str) -> None:
    assert check_origin(url, allowed_origins([HUB])).hostname == "hub.example"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://evil.example:8443/x", "not the hub's"),
        ("https://hub.example/x", "not the hub's"),  # port 443, not 8443
        ("https://hub.example:9443/x", "not the hub's"),
        ("http://hub.example:8443/x", "not the hub's"),  # https downgrade
        ("https://hub.example:8443@evil.example/x", "user info"),
        ("https://user:pw@hub.example:8443/x", "user info"),
        ("https://hub.example.evil.example:8443/x", "not the hub's"),
        ("https://hub.example:8443\\@evil.example/x", "not a plain URL"),
        ("https://hub.example:8443/x\r\nHost: evil", "not a plain URL"),
        ("file:///etc/passwd", "http:// or https://"),
        ("ftp://hub.example:8443/x", "http:// or https://"),
        ("https://:8443/x", "names no host"),
        ("https://hub.example:99999/x", "bad port"),
    ],
)
def test_other_origins_are_refused(url: str, reason: str) -> None:
    with pytest.raises(InstallError, match=reason):
        check_origin(url, allowed_origins([HUB]))


def test_nothing_is_allowed_without_a_known_origin() -> None:
    with pytest.raises(InstallError, match="enroll, or set download_origins"):
        check_origin("http://127.0.0.1:8080/x", allowed_origins([None]))


def test_default_ports_are_filled_in() -> None:
    assert origin_of("http://h/x") == origin_of("http://h:80/y")
    assert str(origin_of("https://[::1]/x")) == "https://[::1]:443"
