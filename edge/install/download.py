"""Bounded, resumable bundle downloads over HTTP(S) with the standard library only.

Bytes go to ``<dest>.part``; an interrupted download (network error, agent killed) is
continued from where it stopped with an HTTP ``Range`` request, so a flaky link or a
restart never starts a large bundle over. The total size and the total time are bounded;
a server that ignores ``Range`` (200 instead of 206) simply sends everything again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from edge.errors import InstallError

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
RETRY_BASE_S = 0.25  # back-off before retry n: 2**n times this (tests shorten it)
ATTEMPTS = 5
Progress = Callable[[int, int | None], None]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def download(
    url: str,
    dest: Path,
    *,
    max_bytes: int,
    timeout: float,
    token: str | None = None,
    expected_size: int | None = None,
    progress: Progress | None = None,
) -> Path:
    """Fetch ``url`` into ``dest`` (via ``dest.part``) and return ``dest``.

    Raises InstallError(step="downloading") with a one-line reason. The caller checks the
    sha256; a file that fails it must be deleted by the caller so it is not resumed.
    """
    scheme = urlparse(url).scheme
    if scheme not in ("http", "https"):
        raise InstallError("downloading", f"refusing to download from a {scheme or 'bad'} URL")
    if expected_size is not None and expected_size > max_bytes:
        raise InstallError(
            "downloading", f"bundle of {expected_size} bytes exceeds the {max_bytes} byte limit"
        )
    part = dest.with_name(dest.name + ".part")
    deadline = time.monotonic() + timeout
    last_error = "no attempt made"
    for attempt in range(1, ATTEMPTS + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            if _fetch(url, part, token, max_bytes, deadline, expected_size, progress):
                os.replace(part, dest)
                return dest
        except _Retry as exc:
            last_error = str(exc)
            log.warning("download attempt %d of %s failed: %s", attempt, url, exc)
            time.sleep(min(2.0**attempt * RETRY_BASE_S, max(0.0, deadline - time.monotonic())))
    if time.monotonic() >= deadline:
        raise InstallError("downloading", f"download did not finish within {timeout:g} s")
    raise InstallError("downloading", f"download failed after {ATTEMPTS} attempts: {last_error}")


class _Retry(Exception):
    """A transient failure: try again from the bytes we have."""


def _fetch(  # noqa: C901 - one HTTP exchange: each status and limit is checked in order
    url: str,
    part: Path,
    token: str | None,
    max_bytes: int,
    deadline: float,
    expected_size: int | None,
    progress: Progress | None,
) -> bool:
    have = part.stat().st_size if part.exists() else 0
    if expected_size is not None and have == expected_size:
        return True
    if expected_size is not None and have > expected_size:
        part.unlink()
        have = 0
    headers = {"User-Agent": "edgekit-agent"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    socket_timeout = max(1.0, min(30.0, deadline - time.monotonic()))
    try:
        resp = urllib.request.urlopen(req, timeout=socket_timeout)  # scheme checked above
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # our part is at least as big as the file: start over
            part.unlink(missing_ok=True)
            raise _Retry("server refused the resume range; starting over") from None
        if exc.code in (401, 403):
            raise InstallError("downloading", f"bundle download refused: HTTP {exc.code}") from None
        if exc.code == 404:
            raise InstallError("downloading", f"bundle not found: HTTP 404 for {url}") from None
        if 400 <= exc.code < 500:
            raise InstallError("downloading", f"bundle download failed: HTTP {exc.code}") from None
        raise _Retry(f"HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _Retry(f"cannot reach {urlparse(url).netloc}: {reason}") from None
    with contextlib.closing(resp):
        if resp.status == 206 and have:
            mode = "ab"
        else:
            mode, have = "wb", 0  # full body: the server ignored Range
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else expected_size
        if total is not None and total > max_bytes:
            raise InstallError(
                "downloading", f"bundle of {total} bytes exceeds the {max_bytes} byte limit"
            )
        got = have
        try:
            with part.open(mode) as out:
                while True:
                    if time.monotonic() > deadline:
                        raise _Retry("time limit reached")
                    chunk = resp.read(CHUNK)
                    if not chunk:
                        break
                    got += len(chunk)
                    if got > max_bytes:
                        raise InstallError(
                            "downloading", f"bundle exceeds the {max_bytes} byte limit"
                        )
                    out.write(chunk)
                    if progress is not None:
                        progress(got, total)
                out.flush()
                os.fsync(out.fileno())
        except InstallError:
            part.unlink(missing_ok=True)
            raise
        except OSError as exc:
            raise _Retry(f"connection lost after {got} bytes: {exc}") from None
    if total is not None and got < total:
        raise _Retry(f"connection closed after {got} of {total} bytes")
    return True
