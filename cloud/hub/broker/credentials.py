"""Broker accounts: generated passwords, stored as Mosquitto's dynamic-security plugin stores
them, and the topics each account may use.

The hub keeps a device's broker password only as the PBKDF2-HMAC-SHA512 hash (12-byte salt,
64-byte hash, base64) that ``mosquitto_dynamic_security.so`` reads from its JSON file, so the
same record seeds the broker's configuration and lets the embedded demo broker check logins,
and a stolen database yields no device's broker password.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

from edge.contract import CMD, EVENTS, INFER_REQ, INFER_RES, STATUS, TELEMETRY, topic, topic_filter

HUB_USERNAME = "edgekit-hub"
SALT_BYTES = 12  # what Mosquitto 2.0's dynamic security expects (SALT_LEN)
HASH_BYTES = 64
ITERATIONS = 101  # Mosquitto's default; the passwords are 256-bit random, not words

# (acl type as Mosquitto dynamic security names it, topic or filter)
Acl = tuple[str, str]


def new_password() -> str:
    return secrets.token_urlsafe(32)


def hash_password(password: str, *, salt: bytes | None = None) -> dict[str, Any]:
    """``{"salt", "password", "iterations"}`` exactly as dynamic-security JSON holds them."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, ITERATIONS, HASH_BYTES)
    return {
        "salt": base64.b64encode(salt).decode(),
        "password": base64.b64encode(digest).decode(),
        "iterations": ITERATIONS,
    }


def check_password(secret: dict[str, Any] | None, password: str) -> bool:
    """True when ``password`` matches the stored ``secret`` (constant-time comparison)."""
    if not isinstance(secret, dict):
        return False
    try:
        salt = base64.b64decode(secret["salt"], validate=True)
        want = base64.b64decode(secret["password"], validate=True)
        iterations = int(secret["iterations"])
    except (KeyError, TypeError, ValueError):
        return False
    if not 1 <= iterations <= 10_000_000:
        return False
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(want))
    return hmac.compare_digest(got, want)


def device_acls(device: str) -> list[Acl]:
    """A device publishes only its own reports and subscribes only to its own inbox."""
    own = [("publishClientSend", topic(device, leaf)) for leaf in (STATUS, TELEMETRY, EVENTS)]
    own.append(("publishClientSend", topic(device, INFER_RES)))
    own += [("subscribePattern", topic(device, leaf)) for leaf in (CMD, INFER_REQ)]
    own += [("publishClientReceive", topic(device, leaf)) for leaf in (CMD, INFER_REQ)]
    return own


def hub_acls() -> list[Acl]:
    """The hub reads every device's reports and writes every device's commands (and may ask
    devices for inferences); nothing else."""
    acls: list[Acl] = []
    for leaf in (STATUS, TELEMETRY, EVENTS, INFER_RES):
        acls.append(("subscribePattern", topic_filter(leaf)))
        acls.append(("subscribePattern", f"$share/+/{topic_filter(leaf)}"))
        acls.append(("publishClientReceive", topic_filter(leaf)))
    for leaf in (CMD, INFER_REQ):
        acls.append(("publishClientSend", topic_filter(leaf)))
    return acls
