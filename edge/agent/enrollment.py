"""Enrollment: trade a one-time hub token for per-device credentials, kept on disk.

``POST <hub>/api/v1/enroll`` with ``{"token", "device"}`` answers
``{"device", "token", "tags", "command_key"}``; the device token (and the PEM public key
the hub signs commands with) is stored in ``DATA_DIR/credentials.json``
(mode 0600) and sent as ``Authorization: Bearer`` on bundle downloads. The response's
``mqtt`` (``{"username", "password"}``: the device's own broker account) is stored there too;
the agent logs in with it when its config names no MQTT username (see :func:`mqtt_login`).
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
    if "mqtt" in obj and _mqtt_pair(obj["mqtt"]) is None:
        raise ConfigError(f"{path} has a malformed 'mqtt' account; delete it and enroll again")
    return obj


def _mqtt_pair(value: Any) -> tuple[str, str] | None:
    if not isinstance(value, dict):
        return None
    user, password = value.get("username"), value.get("password")
    if not isinstance(user, str) or not user or not isinstance(password, str) or not password:
        return None
    return user, password


def mqtt_login(
    username: str | None, password: str | None, credentials: dict[str, Any] | None
) -> tuple[str | None, str | None]:
    """The MQTT login to use: the configured one when it names a user, else the account the
    hub gave at enrollment, else none (anonymous)."""
    if username is not None:
        return username, password
    pair = _mqtt_pair((credentials or {}).get("mqtt"))
    return pair if pair is not None else (None, password)


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
    if isinstance(obj.get("command_key"), str):  # the hub's command key, trusted from now on
        creds["command_key"] = obj["command_key"]
    if obj.get("mqtt") is not None:
        if _mqtt_pair(obj["mqtt"]) is None:
            raise EnrollError("hub answered enrollment with a malformed 'mqtt' account")
        creds["mqtt"] = {"username": obj["mqtt"]["username"], "password": obj["mqtt"]["password"]}
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
