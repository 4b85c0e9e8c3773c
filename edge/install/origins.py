"""Where the agent may download from: the hub's own origin, or an explicit allow-list.

A deploy command's ``url`` decides where the agent connects and so where its device token
goes. The token belongs to the hub the device enrolled with, so a URL is accepted only
when its origin (scheme, host, port: RFC 6454) is one of the allowed ones; anything else
(another host, another port, ``http`` where the hub is ``https``, user info such as
``http://hub@evil/``) is refused before a connection is made. The download then connects
to exactly the parsed host and port that were checked (see edge/install/download.py), so
no second parser can disagree with this one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from edge.errors import InstallError

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    """``scheme://host:port``, normalised (lower case, default port filled in)."""

    scheme: str
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


def _split(url: str, what: str) -> SplitResult:
    if not isinstance(url, str) or not url or any(ord(ch) < 33 or ch == "\\" for ch in url):
        raise InstallError("downloading", f"{what} {url!r} is not a plain URL")
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS:
        raise InstallError(
            "downloading", f"{what} must be http:// or https://, not {parts.scheme or 'none'}"
        )
    if "@" in parts.netloc:
        raise InstallError("downloading", f"{what} carries user info ({parts.netloc!r})")
    if not parts.hostname:
        raise InstallError("downloading", f"{what} {url!r} names no host")
    try:
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise InstallError("downloading", f"{what} {url!r} has a bad port") from None
    return parts


def origin_of(url: str, what: str = "URL") -> Origin:
    """The origin of ``url``; InstallError for anything that is not a plain http(s) URL."""
    parts = _split(url, what)
    scheme = parts.scheme
    assert parts.hostname is not None  # checked by _split
    return Origin(scheme, parts.hostname.lower(), parts.port or DEFAULT_PORTS[scheme])


def allowed_origins(urls: Iterable[str | None]) -> tuple[Origin, ...]:
    """The distinct origins of the given hub / allow-list URLs (None entries skipped)."""
    out: list[Origin] = []
    for url in urls:
        if url:
            origin = origin_of(url, "allowed origin")
            if origin not in out:
                out.append(origin)
    return tuple(out)


def check_origin(url: str, allowed: Iterable[Origin]) -> SplitResult:
    """The split ``url`` if its origin is allowed; InstallError naming the origin otherwise.

    Nothing is allowed when no origin is known (a device that never enrolled and has no
    ``download_origins``): refusing is the only answer that cannot leak the token.
    """
    origin = origin_of(url, "bundle URL")
    allowed = tuple(allowed)
    if origin not in allowed:
        known = ", ".join(str(o) for o in allowed) or "none (enroll, or set download_origins)"
        raise InstallError(
            "downloading", f"bundle URL origin {origin} is not the hub's (allowed: {known})"
        )
    return urlsplit(url)
