"""Signed commands for tests: a fixed hub command key and complete ``cmd`` payloads.

Agents under test trust :data:`HUB_KEY` through ``command_keys`` (:func:`write_hub_key`),
so tests send commands exactly as the hub does: with a device, a nonce, an expiry and an
Ed25519 signature over :meth:`edge.contract.Command.signing_bytes`.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.bundle import key_id
from edge.contract import SCHEMA_CMD, Command

# Fixed, so a key file written by one test process verifies commands signed by another.
HUB_KEY = Ed25519PrivateKey.from_private_bytes(b"edgekit tests: hub command key!!")
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(b"edgekit tests: somebody else key")


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def hub_public_pem() -> bytes:
    """The PEM public key of :data:`HUB_KEY`."""
    return public_pem(HUB_KEY)


def write_hub_key(directory: Path | str, key: Ed25519PrivateKey = HUB_KEY) -> Path:
    """Write the public PEM of ``key`` into ``directory``; the path goes in ``command_keys``."""
    path = Path(directory) / f"command-key-{key_id(key.public_key())}.pub"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(public_pem(key))
    return path


def sign_payload(obj: dict[str, Any], key: Ed25519PrivateKey = HUB_KEY) -> dict[str, Any]:
    """``obj`` with ``key_id`` and ``sig`` set, signed as the hub signs."""
    out = {k: v for k, v in obj.items() if k not in ("key_id", "sig")}
    out["key_id"] = key_id(key.public_key())
    out["sig"] = base64.b64encode(key.sign(Command.signing_bytes(out))).decode("ascii")
    return out


def command(
    kind: str,
    device: str | None,
    *,
    key: Ed25519PrivateKey | None = HUB_KEY,
    ttl: float = 300.0,
    **fields: Any,
) -> dict[str, Any]:
    """A complete ``cmd`` payload (schema, id, ts, expires, device, nonce, key_id, sig).

    ``fields`` add to or override any of them (``id="c1"``, ``expires=...``); a field given
    as ``None`` is left out (``nonce=None`` makes a command without a nonce). ``key=None``
    leaves the command unsigned.
    """
    now = time.time()
    obj: dict[str, Any] = {
        "schema": SCHEMA_CMD,
        "id": f"cmd-{uuid.uuid4().hex[:12]}",
        "kind": kind,
        "ts": now,
        "expires": now + ttl,
        "device": device,
        "nonce": secrets.token_urlsafe(18),
    }
    obj.update(fields)
    obj = {k: v for k, v in obj.items() if v is not None}
    return obj if key is None else sign_payload(obj, key)
