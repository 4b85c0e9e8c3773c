"""The simulator's shared bundle cache against a real hub over HTTP: one full download per
process, every other device's request a conditional one answered 304 (still authenticated),
and a refusal is the download's own error, not a cached file."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import make_server

from cloud.sim.bundles import BundleCache
from edge.errors import InstallError
from tests.cloud.hub.conftest import app, hub_config, keys, make_bundle, tokens  # noqa: F401
from tests.cloud.hub.http.test_api import upload


@pytest.fixture
def served(app: Any, tokens: Any, make_bundle: Any) -> Iterator[tuple[str, str, str, int]]:  # noqa: F811
    path: Path = make_bundle(1)
    assert upload(app.test_client(), tokens["operator"], path).status_code == 201
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = tokens["viewer"]["Authorization"].removeprefix("Bearer ")
    url = f"http://127.0.0.1:{server.server_port}/api/v1/models/digits/1/bundle"
    yield url, token, hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size
    server.shutdown()


def test_one_download_then_revalidations(served: tuple[str, str, str, int], tmp_path: Path) -> None:
    url, token, sha, size = served
    cache = BundleCache(tmp_path / "dl")
    got: list[Any] = []

    def device() -> None:
        got.append(cache.fetch(url, token=token, size=size, max_bytes=10**8, timeout=10))

    threads = [threading.Thread(target=device) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(got) == 8 and {g.sha256 for g in got} == {sha}
    assert cache.full == 1 and cache.not_modified == 7
    assert sum(not g.revalidated for g in got) == 1
    assert hashlib.sha256(got[0].path.read_bytes()).hexdigest() == sha


def test_a_refused_revalidation_is_the_downloads_error(
    served: tuple[str, str, str, int], tmp_path: Path
) -> None:
    url, token, sha, size = served
    cache = BundleCache(tmp_path / "dl")
    assert cache.fetch(url, token=token, size=size, max_bytes=10**8, timeout=10).sha256 == sha
    with pytest.raises(InstallError, match=r"401"):
        cache.fetch(url, token="not-a-token", size=size, max_bytes=10**8, timeout=10)
    assert cache.not_modified == 0
