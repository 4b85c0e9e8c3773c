"""A small typed client of a running hub's REST API (``/api/v1``), standard library only.

The rollout and devices commands never touch the database: they speak to the hub a pipeline
can reach, as an API token. Errors are sorted by who must act, which is what the exit codes
of those commands say (docs/hub.md, "Rollouts and devices from the command line").
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from edge.errors import EdgekitError

ENV_HUB = "EDGEKIT_HUB"
ENV_TOKEN = "EDGEKIT_TOKEN"


class Exit(IntEnum):
    """Exit codes of ``edgekit hub rollout|devices`` (documented; pipelines branch on them)."""

    OK = 0
    ROLLOUT_FAILED = 1  # the rollout ended rolled_back or aborted (--wait)
    USAGE = 2  # bad flags, bad spec, or the hub refused the request (400/404/409/422)
    UNREACHABLE = 3  # no hub at that URL, the token was refused (401/403), 429 or a 5xx
    TIMEOUT = 4  # --wait ran out of time
    PAUSED = 5  # the rollout paused and waits for an operator (--wait)


class CliError(EdgekitError):
    """An error with the exit code it maps to; the message is one line for a human."""

    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        self.code = code


class HubRefused(CliError):
    """The hub answered 4xx/5xx; ``status`` and ``error`` (its short code) as it sent them."""

    def __init__(self, status: int, error: str, message: str) -> None:
        code = Exit.UNREACHABLE if status in (401, 403, 429) or status >= 500 else Exit.USAGE
        super().__init__(f"hub refused ({status} {error}): {message}", code)
        self.status = status
        self.error = error
        self.retry_after: float | None = None


class HubUnreachable(CliError):
    def __init__(self, message: str) -> None:
        super().__init__(message, Exit.UNREACHABLE)


@dataclass(frozen=True)
class HubClient:
    url: str
    token: str
    timeout: float = 30.0

    @staticmethod
    def resolve(hub: str | None, token: str | None) -> HubClient:
        """``--hub``/``--token``, else ``EDGEKIT_HUB``/``EDGEKIT_TOKEN`` (flags win)."""
        url = hub or os.environ.get(ENV_HUB) or ""
        secret = token or os.environ.get(ENV_TOKEN) or ""
        if not url:
            raise CliError(f"no hub: give --hub URL or set {ENV_HUB}", Exit.USAGE)
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise CliError(f"the hub must be an http(s) URL, got {url!r}", Exit.USAGE)
        if not secret:
            raise CliError(f"no API token: give --token T or set {ENV_TOKEN}", Exit.USAGE)
        return HubClient(url.rstrip("/"), secret)

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One request to ``/api/v1`` + ``path``; the decoded JSON answer (None if empty)."""
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(
            f"{self.url}/api/v1{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise _refused(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            why = getattr(exc, "reason", exc)
            raise HubUnreachable(f"cannot reach the hub at {self.url}: {why}") from None
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise HubUnreachable(f"{self.url} did not answer JSON: is it an edgekit hub?") from None

    def download(self, path: str, dest: Any, limit: int = 4 << 30) -> int:
        """Stream ``/api/v1`` + ``path`` into the open binary file ``dest``; bytes written."""
        req = urllib.request.Request(
            f"{self.url}/api/v1{path}", headers={"Authorization": f"Bearer {self.token}"}
        )
        total = 0
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                while chunk := resp.read(1 << 20):
                    total += len(chunk)
                    if total > limit:
                        raise CliError(f"{path}: the download exceeds {limit} bytes", Exit.USAGE)
                    dest.write(chunk)
        except urllib.error.HTTPError as exc:
            raise _refused(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            why = getattr(exc, "reason", exc)
            raise HubUnreachable(f"cannot reach the hub at {self.url}: {why}") from None
        return total

    def get(self, path: str, **query: Any) -> Any:
        params = {k: v for k, v in query.items() if v is not None}
        suffix = f"?{urllib.parse.urlencode(params)}" if params else ""
        return self.call("GET", path + suffix)

    def post(self, path: str, body: Any = None) -> Any:
        return self.call("POST", path, body)


def quote(segment: str) -> str:
    """A path segment (a rollout or device id) as typed, never as more path."""
    return urllib.parse.quote(segment, safe="")


def _refused(exc: urllib.error.HTTPError) -> HubRefused:
    error, message = "error", str(exc.reason)
    try:
        body = json.loads(exc.read())["error"]
        error, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError, OSError):
        pass  # not the hub's error shape (a proxy's page): keep the HTTP reason
    out = HubRefused(exc.code, error, message)
    retry = exc.headers.get("Retry-After") if exc.headers else None
    if retry:
        with contextlib.suppress(ValueError):  # an HTTP date: the caller's own backoff
            out.retry_after = float(retry)
    return out


def add_api_flags(p: Any) -> None:
    """``--hub``, ``--token`` and ``--json``, shared by every command that calls the API."""
    p.add_argument("--hub", help=f"hub base URL, e.g. http://127.0.0.1:8080 (env {ENV_HUB})")
    p.add_argument("--token", help=f"API token (env {ENV_TOKEN}; flags win)")
    p.add_argument("--json", action="store_true", help="print the API's JSON (for scripts)")


def run(args: Any, fn: Any) -> int:
    """Call ``fn(client, args) -> Exit`` and turn a CliError into its line and exit code."""
    import sys

    try:
        return int(fn(HubClient.resolve(args.hub, args.token), args))
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return int(exc.code)
