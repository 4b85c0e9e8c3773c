"""Client side of ``POST /api/v1/models``, streamed with only the standard library."""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from cloud.errors import UploadError
from edge.errors import ConfigError

CHUNK = 1 << 20


@contextlib.contextmanager
def _byte_bar(show: bool, total: int, name: str) -> Iterator[Callable[[int], object]]:
    """A bytes bar (cloud/progress.py) while the body is sent, or a no-op."""
    if not show:
        yield lambda _n: None
        return
    from cloud.progress import bar

    with bar(total, f"upload {name}", unit="B", unit_scale=True, unit_divisor=1024) as b:
        yield b.update


def upload_bundle(
    bundle: Path, hub_url: str, token: str, timeout: float = 300.0, *, progress: bool = False
) -> dict[str, Any]:
    """POST ``bundle`` to the hub; ``progress`` draws a byte bar on stderr if it is a terminal."""
    if not bundle.is_file():
        raise ConfigError(f"bundle {bundle} does not exist")
    if not hub_url.startswith(("http://", "https://")):
        raise ConfigError(f"--hub must be an http(s) URL, got {hub_url!r}")
    boundary = f"edgekit-{uuid.uuid4().hex}"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="bundle"; '
        f'filename="{bundle.name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = len(head) + bundle.stat().st_size + len(tail)

    def body() -> Iterator[bytes]:
        yield head
        with bundle.open("rb") as fh, _byte_bar(progress, size, bundle.name) as sent:
            while chunk := fh.read(CHUNK):
                yield chunk
                sent(len(chunk))
        yield tail

    req = urllib.request.Request(
        hub_url.rstrip("/") + "/api/v1/models",
        data=body(),
        method="POST",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": f"multipart/form-data; boundary={boundary}",
            "Content-Length": str(size),
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        try:
            err = json.loads(exc.read())["error"]
            msg = f"{err['code']}: {err['message']}"
        except (ValueError, KeyError, TypeError):
            msg = exc.reason
        raise UploadError(f"hub refused the upload ({exc.code} {msg})") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise UploadError(f"cannot reach the hub at {hub_url}: {exc}") from exc
