"""MQTT topics: one tree per device, ``edgekit/v1/<id>/<kind>``, and the schema names on them."""

from __future__ import annotations

import re

from edge.errors import ContractError

TOPIC_ROOT = "edgekit/v1"
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# New ids (enrollment, agent start): what every broker and topic accepts. NATS maps MQTT's
# '/' to '.', so a '.' in a topic level breaks subscriptions there; a leading '-' reads as a
# command-line flag. DEVICE_ID_RE stays wider so reports of older devices still parse.
DEVICE_ID_MAX = 64
NEW_DEVICE_ID_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_-]{{0,{DEVICE_ID_MAX - 1}}}$")

# Topic leaves under edgekit/v1/<device>/
STATUS = "status"
TELEMETRY = "telemetry"
EVENTS = "events"
CMD = "cmd"
INFER_REQ = "infer/req"
INFER_RES = "infer/res"
TOPIC_KINDS = (STATUS, TELEMETRY, EVENTS, CMD, INFER_REQ, INFER_RES)

SCHEMA_STATUS = "edgekit.status/1"
SCHEMA_TELEMETRY = "edgekit.telemetry/1"
SCHEMA_EVENT = "edgekit.event/1"
SCHEMA_CMD = "edgekit.cmd/1"
SCHEMA_INFER_REQ = "edgekit.infer.req/1"
SCHEMA_INFER_RES = "edgekit.infer.res/1"


def validate_device_id(device: str) -> str:
    """Device ids become MQTT topic levels, so they must not contain ``/``, ``+`` or ``#``."""
    if not isinstance(device, str) or not DEVICE_ID_RE.match(device):
        raise ContractError(
            f"invalid device id {device!r}: use 1-128 letters, digits, '.', '_' or '-'"
        )
    return device


def check_device_id(device: object) -> str:
    """The rule for a device id given at enrollment or agent start: 1-64 letters, digits,
    '-' and '_', starting with a letter or digit. Raises ContractError saying so."""
    if isinstance(device, str) and NEW_DEVICE_ID_RE.match(device):
        return device
    why = ""
    if isinstance(device, str) and "." in device:
        why = " ('.' breaks topics on NATS and other brokers that map '/' to '.')"
    elif isinstance(device, str) and len(device) > DEVICE_ID_MAX:
        why = f" (it has {len(device)} characters)"
    raise ContractError(
        f"invalid device id {device!r}: use 1-{DEVICE_ID_MAX} letters, digits, '-' or '_', "
        f"starting with a letter or digit{why}"
    )


def topic(device: str, kind: str) -> str:
    """The topic for one device and one leaf, e.g. ``edgekit/v1/cam-1/status``."""
    if kind not in TOPIC_KINDS:
        raise ContractError(f"unknown topic kind {kind!r}")
    return f"{TOPIC_ROOT}/{validate_device_id(device)}/{kind}"


def topic_filter(kind: str, device: str = "+") -> str:
    """A subscription filter for one leaf over all devices (``+``) or one device."""
    if kind not in TOPIC_KINDS:
        raise ContractError(f"unknown topic kind {kind!r}")
    return f"{TOPIC_ROOT}/{device}/{kind}"


def parse_topic(name: str) -> tuple[str, str]:
    """Split a topic into ``(device, kind)``; raise ContractError if it is not ours."""
    prefix = TOPIC_ROOT + "/"
    if not name.startswith(prefix):
        raise ContractError(f"topic {name!r} is not under {TOPIC_ROOT}")
    device, _, kind = name[len(prefix) :].partition("/")
    if kind not in TOPIC_KINDS:
        raise ContractError(f"topic {name!r} has unknown kind {kind!r}")
    return validate_device_id(device), kind
