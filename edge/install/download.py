"""Bounded, resumable bundle downloads over HTTP(S) with the standard library only.

Bytes go to ``<dest>.part``; an interrupted download (network error, agent killed) is
continued from where it stopped with an HTTP ``Range`` request, so a flaky link or a
restart never starts a large bundle over. A server that ignores ``Range`` (200 instead
of 206) simply sends everything again.

What a hostile server cannot do (TUF's "endless data" and "slow retrieval" attacks):

* send more than the declared ``size``: at most ``size`` bytes are ever read (plus one, to
  notice a longer body), and a ``Content-Length`` or ``Content-Range`` that disagrees
  with it is refused before the body is read;
* hold the download past its deadline: a watchdog shuts the socket down at the deadline
  whatever the connection is doing (connecting, headers, body, one byte at a time), and
  every receive is also bounded by the time left;
* leave files behind: a refused download deletes its ``.part`` file;
* redirect it elsewhere: redirects are not followed (the origin was checked, see
  edge/install/origins.py, and the connection goes to exactly the host and port checked).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import logging
import os
import re
import shutil
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import SplitResult, urlsplit

from edge.errors import InstallError

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
RETRY_BASE_S = 0.25  # back-off before retry n: 2**n times this (tests shorten it)
ATTEMPTS = 5
MAX_RECV_WAIT_S = 30.0  # no byte for this long: the connection is dead, try again
Progress = Callable[[int, int | None], None]
CONTENT_RANGE_RE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


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
    expected_size: int | None,
    progress: Progress | None = None,
) -> Path:
    """Fetch exactly ``expected_size`` bytes of ``url`` into ``dest`` (via ``dest.part``).

    Raises InstallError(step="downloading") with a one-line reason, after deleting the
    ``.part`` file. The caller checks the sha256 (and deletes a file that fails it).
    """
    part = dest.with_name(dest.name + ".part")
    try:
        return _download(url, dest, part, max_bytes, timeout, token, expected_size, progress)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def _download(
    url: str,
    dest: Path,
    part: Path,
    max_bytes: int,
    timeout: float,
    token: str | None,
    size: int | None,
    progress: Progress | None,
) -> Path:
    target = urlsplit(url)
    if target.scheme not in ("http", "https") or not target.hostname:
        raise InstallError("downloading", f"refusing to download from {url!r}: not http(s)")
    if size is None or size <= 0:
        raise InstallError("downloading", "no declared size: refusing an unbounded download")
    if size > max_bytes:
        raise InstallError(
            "downloading", f"bundle of {size} bytes exceeds the {max_bytes} byte limit"
        )
    deadline = time.monotonic() + timeout
    last_error = "no attempt made"
    for attempt in range(1, ATTEMPTS + 1):
        if deadline - time.monotonic() <= 0:
            break
        try:
            _fetch(target, part, token, size, deadline, progress)
            os.replace(part, dest)
            return dest
        except _Retry as exc:
            last_error = str(exc)
            log.warning("download attempt %d of %s failed: %s", attempt, url, exc)
            if time.monotonic() >= deadline:
                break
            time.sleep(min(2.0**attempt * RETRY_BASE_S, max(0.0, deadline - time.monotonic())))
    if time.monotonic() >= deadline:
        raise InstallError("downloading", f"download did not finish within {timeout:g} s")
    raise InstallError("downloading", f"download failed after {ATTEMPTS} attempts: {last_error}")


class _Retry(Exception):
    """A transient failure: try again from the bytes we have."""


class _Deadline:
    """Shuts the connection's socket down when the deadline passes, so no read (of the
    status line, a header, or a body that trickles in a byte at a time) outlives it."""

    def __init__(self, conn: http.client.HTTPConnection, deadline: float) -> None:
        self.conn = conn
        self.fired = threading.Event()
        self._timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self._timer.daemon = True

    def _fire(self) -> None:
        self.fired.set()
        sock = self.conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    @contextlib.contextmanager
    def armed(self) -> Iterator[None]:
        self._timer.start()
        try:
            yield
        finally:
            self._timer.cancel()
            self.conn.close()


def _connection(target: SplitResult, deadline: float) -> http.client.HTTPConnection:
    wait = max(0.05, min(MAX_RECV_WAIT_S, deadline - time.monotonic()))
    host, port = target.hostname or "", target.port
    if target.scheme == "https":
        return http.client.HTTPSConnection(
            host, port, timeout=wait, context=ssl.create_default_context()
        )
    return http.client.HTTPConnection(host, port, timeout=wait)


def _fetch(
    target: SplitResult,
    part: Path,
    token: str | None,
    size: int,
    deadline: float,
    progress: Progress | None,
) -> None:
    have = part.stat().st_size if part.exists() else 0
    if have > size:
        part.unlink()
        have = 0
    if have == size:
        return
    _check_space(part, size - have)
    headers = {"User-Agent": "edgekit-agent", "Accept-Encoding": "identity"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if have:
        headers["Range"] = f"bytes={have}-{size - 1}"
    path = target.path or "/"
    if target.query:
        path += "?" + target.query
    conn = _connection(target, deadline)
    watchdog = _Deadline(conn, deadline)
    try:
        with watchdog.armed():
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            start = _check_response(resp, have, size)  # 0: the whole file again ("wb")
            _receive(resp, conn, part, start, size, deadline, progress)
    except _LocalWriteError as exc:
        cause = exc.__cause__
        assert isinstance(cause, OSError)
        got = part.stat().st_size if part.exists() else 0
        raise _disk_error(part, got, size, cause) from None
    except (http.client.HTTPException, OSError) as exc:
        if watchdog.fired.is_set() or time.monotonic() >= deadline:
            raise _Retry("time limit reached") from None
        got = part.stat().st_size if part.exists() else 0
        raise _Retry(f"connection to {target.netloc} failed after {got} bytes: {exc}") from None
    if watchdog.fired.is_set():
        raise _Retry("time limit reached")


class _LocalWriteError(Exception):
    """Writing the bundle to local disk failed: final, not a network problem to retry."""


def _check_space(part: Path, need: int) -> None:
    """Refuse up front a download the disk cannot hold (the old model keeps serving)."""
    try:
        free = shutil.disk_usage(part.parent).free
    except OSError:
        return  # unknown: the writes themselves will tell
    if free < need:
        raise InstallError(
            "downloading",
            f"not enough disk space for the bundle: {need} bytes needed, {free} free "
            f"in {part.parent}",
        )


def _disk_error(part: Path, got: int, size: int, exc: OSError) -> InstallError:
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    what = "disk full" if full else "cannot write"
    return InstallError(
        "downloading",
        f"{what} while storing the bundle in {part.parent} after {got} of {size} bytes: "
        f"{exc.strerror or exc}",
    )


def _check_response(resp: http.client.HTTPResponse, have: int, size: int) -> int:
    """The offset the body starts at; InstallError (final) or _Retry (transient) otherwise."""
    status = resp.status
    if status == 416 and have:
        raise _Retry("server refused the resume range; starting over")
    if status in (401, 403):
        raise InstallError("downloading", f"bundle download refused: HTTP {status}")
    if status == 404:
        raise InstallError("downloading", "bundle not found: HTTP 404")
    if 300 <= status < 400:
        raise InstallError("downloading", f"bundle URL redirects (HTTP {status}); not followed")
    if 400 <= status < 500:
        raise InstallError("downloading", f"bundle download failed: HTTP {status}")
    if status >= 500:
        raise _Retry(f"HTTP {status}")
    if status not in (200, 206):
        raise InstallError("downloading", f"unexpected HTTP {status} for a bundle download")
    start = 0
    if status == 206:
        match = CONTENT_RANGE_RE.fullmatch(resp.headers.get("Content-Range", "").strip())
        if match is None or int(match.group(1)) != have:
            raise InstallError(
                "downloading", "server answered the resume with a range that was not asked for"
            )
        if match.group(3) != "*" and int(match.group(3)) != size:
            raise InstallError(
                "downloading",
                f"server says the bundle is {match.group(3)} bytes, the command says {size}",
            )
        start = have
    _check_length(resp.headers.get("Content-Length"), start, size)
    return start


def _check_length(length: str | None, start: int, size: int) -> None:
    """A body length the server announces must end exactly at the declared size."""
    if length is not None and (not length.strip().isdigit() or start + int(length) != size):
        raise InstallError(
            "downloading",
            f"Content-Length {length.strip()} disagrees with the declared size {size}"
            + (f" (resuming at {start})" if start else ""),
        )


def _receive(
    resp: http.client.HTTPResponse,
    conn: http.client.HTTPConnection,
    part: Path,
    start: int,
    size: int,
    deadline: float,
    progress: Progress | None,
) -> None:
    """Append the body to ``part``: never more than ``size`` bytes in all, and a body that
    goes on past them is refused."""
    got = start
    try:
        out = part.open("ab" if start else "wb")
    except OSError as exc:
        raise _LocalWriteError() from exc
    with out:
        while got < size:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Retry("time limit reached")
            if conn.sock is not None:  # one receive never waits longer than the time left
                conn.sock.settimeout(max(0.01, min(MAX_RECV_WAIT_S, left)))
            chunk = resp.read1(min(CHUNK, size - got))
            if not chunk:
                break
            try:
                out.write(chunk)
            except OSError as exc:
                raise _LocalWriteError() from exc
            got += len(chunk)
            if progress is not None:
                progress(got, size)
        try:
            out.flush()
            os.fsync(out.fileno())
        except OSError as exc:
            raise _LocalWriteError() from exc
    if got < size:
        raise _Retry(f"connection closed after {got} of {size} bytes")
    if conn.sock is not None:
        conn.sock.settimeout(max(0.01, min(1.0, deadline - time.monotonic())))
    with contextlib.suppress(OSError, http.client.HTTPException):
        if resp.read1(1):  # one more byte than declared: endless data
            raise InstallError("downloading", f"server sent more than the declared {size} bytes")
