"""Enrollment: trade a one-time hub token for per-device credentials, kept on disk.

``POST <hub>/api/v1/enroll`` with ``{"token", "device"}`` answers
``{"device", "token", "tags"}``; the device token is stored in ``DATA_DIR/credentials.json``
(mode 0600) and sent as ``Authorization: Bearer`` on bundle downloads.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from edge.durable import write_atomic
from edge.errors import ConfigError, EnrollError

CREDENTIALS = "credentials.json"


def load_credentials(data_dir: Path) -> dict[str, Any] | None:
    """The stored credentials, or None when the device never enrolled."""
    path = data_dir / CREDENTIALS
    try:
        obj = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable ({exc}); delete it and enroll again") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("token"), str):
        raise ConfigError(f"{path} has no device token; delete it and enroll again")
    return obj


def save_credentials(data_dir: Path, creds: dict[str, Any]) -> Path:
    path = data_dir / CREDENTIALS
    data_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(creds, indent=2, sort_keys=True).encode())
    os.chmod(path, 0o600)
    return path


def enroll(
    hub: str, enroll_token: str, device: str, data_dir: Path, timeout: float = 15.0
) -> dict[str, Any]:
    """Exchange ``enroll_token`` for device credentials and store them."""
    url = hub.rstrip("/") + "/api/v1/enroll"
    body = json.dumps({"token": enroll_token, "device": device}).encode()
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            obj = json.loads(resp.read(1 << 20))
    except urllib.error.HTTPError as exc:
        detail = _error_message(exc.read(2048))
        raise EnrollError(f"hub refused enrollment (HTTP {exc.code}): {detail}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise EnrollError(f"cannot reach hub at {hub}: {getattr(exc, 'reason', exc)}") from None
    except ValueError:
        raise EnrollError("hub answered enrollment with something that is not JSON") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("token"), str):
        raise EnrollError("hub answered enrollment without a device token")
    creds = {"device": device, "token": obj["token"], "tags": obj.get("tags") or [], "hub": hub}
    save_credentials(data_dir, creds)
    return creds


def _error_message(body: bytes) -> str:
    """The hub's ``{"error": {"message"}}`` text, else the start of the body."""
    text = body.decode("utf-8", "replace").strip()
    try:
        message = json.loads(text)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return text[:200] or "no details"
    return str(message)[:200]
