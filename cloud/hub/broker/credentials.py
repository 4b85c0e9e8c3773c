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
HUB_ROLE = "edgekit-hub"
DEVICE_ROLE_PREFIX = "edgekit-device-"  # one role per device: 2.0's dynsec has no %u patterns
CONTROL_TOPIC = "$CONTROL/dynamic-security/v1"
CONTROL_RESPONSE = CONTROL_TOPIC + "/response"
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
    own += [("unsubscribePattern", topic(device, leaf)) for leaf in (CMD, INFER_REQ)]
    own += [("publishClientReceive", topic(device, leaf)) for leaf in (CMD, INFER_REQ)]
    return own


def device_role(device: str) -> str:
    return DEVICE_ROLE_PREFIX + device


def hub_acls() -> list[Acl]:
    """The hub reads every device's reports and writes every device's commands (and may ask
    devices for inferences), clears a revoked device's retained status, and drives the
    broker's accounts over dynamic security's control topic (enrollment and revocation apply
    at once); nothing else."""
    acls: list[Acl] = []
    for leaf in (STATUS, TELEMETRY, EVENTS, INFER_RES):
        for pattern in (topic_filter(leaf), f"$share/+/{topic_filter(leaf)}"):
            acls.append(("subscribePattern", pattern))
            acls.append(("unsubscribePattern", pattern))  # lease mode hands consuming over
        acls.append(("publishClientReceive", topic_filter(leaf)))
    for leaf in (CMD, INFER_REQ):
        acls.append(("publishClientSend", topic_filter(leaf)))
    # to clear a revoked device's retained status (the broker kicks it without its will)
    acls.append(("publishClientSend", topic_filter(STATUS)))
    acls.append(("publishClientSend", CONTROL_TOPIC))
    acls.append(("subscribePattern", CONTROL_RESPONSE))
    acls.append(("publishClientReceive", CONTROL_RESPONSE))
    return acls


def role_acls(acls: list[Acl]) -> list[dict[str, Any]]:
    """``acls`` as dynamic security's JSON (file and control commands) holds them; every
    entry says ``allow`` because the plugin's default for a listed entry is deny."""
    return [{"acltype": kind, "topic": t, "priority": 0, "allow": True} for kind, t in acls]
