"""A per-process HTTP cache of bundle files, revalidated with ``If-None-Match``.

A thousand simulated devices in one process would otherwise each pull the whole bundle
through the hub's WSGI server, which measures a file server, not a rollout. Every device
still makes its own authenticated request (the hub checks its token and that a rollout
sent it this version), but once the process holds the file the request is conditional:
the hub's bundle ETag is the file's sha256 (``download_bundle`` in
cloud/hub/http/model_routes.py), so a ``304 Not Modified`` proves the cached bytes are
the ones the hub serves. Any other answer falls back to the full download
(``edge.install.download``), which reports refusals and errors in the agent's words.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from edge.errors import InstallError
from edge.install import download, sha256_file


@dataclass(frozen=True)
class CachedBundle:
    path: Path
    sha256: str
    revalidated: bool  # True: a 304 answer, no body sent


class BundleCache:
    """Bundle files by URL, shared by the devices of one simulator process."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._files: dict[str, tuple[Path, str]] = {}  # url -> (file, its sha256)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.full = 0  # downloads of the whole file
        self.not_modified = 0  # conditional requests answered 304

    def _lock(self, url: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(url, threading.Lock())

    def fetch(
        self, url: str, *, token: str | None, size: int | None, max_bytes: int, timeout: float
    ) -> CachedBundle:
        """The bundle at ``url``: revalidated if cached, else downloaded (the first requests
        for a URL wait for one download, then revalidate it like the rest)."""
        cached = self._files.get(url)
        if cached is None:
            with self._lock(url):
                cached = self._files.get(url)
                if cached is None:
                    return self._download(url, token, size, max_bytes, timeout)
        if self._not_modified(url, cached[1], token, timeout):
            with self._guard:
                self.not_modified += 1
            return CachedBundle(cached[0], cached[1], revalidated=True)
        with self._lock(url):  # changed, refused or failed: the full download says which
            return self._download(url, token, size, max_bytes, timeout)

    def _download(
        self, url: str, token: str | None, size: int | None, max_bytes: int, timeout: float
    ) -> CachedBundle:
        with self._guard:
            self.full += 1
            dest = self.root / f"bundle-{self.full}.ekb"
        self.root.mkdir(parents=True, exist_ok=True)
        # an older file stays: a device may still be reading it
        download(url, dest, max_bytes=max_bytes, timeout=timeout, token=token, expected_size=size)
        digest = sha256_file(dest)
        self._files[url] = (dest, digest)
        return CachedBundle(dest, digest, revalidated=False)

    @staticmethod
    def _not_modified(url: str, sha256: str, token: str | None, timeout: float) -> bool:
        """True only on a 304 for ``If-None-Match: "<sha256>"``; a refusal, an error or a
        changed file is False (the full download then reports or fetches it)."""
        target = urlsplit(url)
        if target.scheme != "http" or not target.hostname:
            return False
        headers = {"User-Agent": "edgekit-sim", "If-None-Match": f'"{sha256}"'}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        path = (target.path or "/") + (f"?{target.query}" if target.query else "")
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout)
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            if resp.status != 304:
                return False
            resp.read()
            return True
        except (OSError, http.client.HTTPException) as exc:
            raise InstallError("downloading", f"revalidating {url}: {exc}") from exc
        finally:
            conn.close()
