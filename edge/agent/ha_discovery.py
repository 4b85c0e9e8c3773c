"""Home Assistant MQTT discovery: one retained device config per agent, opt-in.

Home Assistant's device-based discovery reads one retained JSON message per device on
``<prefix>/device/<node_id>/config`` with the device block (``dev``), the origin (``o``) and
every entity as a component (``cmps``). The entities read the topics edgekit already
publishes, so nothing else is sent: sensors take their state from telemetry (templates that
give ``None``, which Home Assistant shows as *unknown*, for the nulls before the first
inference or without labels), the model version from the retained status, and availability
from that status's ``state`` (``offline`` is the agent's will). The config is re-sent on
every connect and whenever Home Assistant says ``online`` on ``<prefix>/status`` (its birth
message after a restart). See docs/mqtt-api.md.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping
from typing import Any

from edge import __version__
from edge import contract as c
from edge.errors import ConfigError
from edge.messaging import Transport

log = logging.getLogger("edgekit.agent")
DEFAULT_PREFIX = "homeassistant"
_NODE_BAD = re.compile(r"[^a-zA-Z0-9_-]")
_PREFIX_RE = re.compile(r"^[^#+/\0\s][^#+\0\s]*$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_setting(value: Any, key: str) -> str | None:
    """``ha_discovery``: true / false, a prefix string, or a table ``{prefix = "..."}``;
    the discovery prefix to use, or None (off)."""
    if isinstance(value, bool):
        return DEFAULT_PREFIX if value else None
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"prefix", "enabled"})
        if unknown:
            raise ConfigError(f"{key}: unknown field(s) {', '.join(unknown)} (prefix, enabled)")
        enabled = value.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{key}.enabled: expected true or false, got {enabled!r}")
        return (
            check_prefix(value.get("prefix", DEFAULT_PREFIX), f"{key}.prefix") if enabled else None
        )
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return DEFAULT_PREFIX
        if word in _FALSE:
            return None
        return check_prefix(value.strip(), key)
    raise ConfigError(f"{key}: expected true, false, a prefix or a table, got {value!r}")


def check_prefix(prefix: Any, key: str) -> str:
    """A discovery prefix: a topic without wildcards, not starting or ending with ``/``."""
    if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix) or prefix.endswith("/"):
        raise ConfigError(
            f"{key}: expected a topic prefix without '+', '#', spaces or outer '/', got {prefix!r}"
        )
    return prefix


def node_id(device: str) -> str:
    """The device id as a Home Assistant node id ([a-zA-Z0-9_-] only). Ids that needed
    changing (``cam.1``) get a short hash of the original, so ``cam.1`` and ``cam_1`` differ."""
    clean = _NODE_BAD.sub("_", device)
    if clean == device:
        return device
    return f"{clean}_{hashlib.sha256(device.encode()).hexdigest()[:6]}"


def config_topic(prefix: str, device: str) -> str:
    return f"{prefix}/device/{node_id(device)}/config"


def _num(expr: str, scale: str = "") -> str:
    """A template giving ``expr`` (a dotted path below ``value_json``) when it is a number,
    else None (absent, null or the wrong type: Home Assistant shows unknown)."""
    head, _, leaf = expr.partition(".")
    if not leaf:
        return (
            f"{{% set v = value_json.{head} if value_json is mapping else none %}}"
            f"{{{{ (v{scale}) | round(6) if v is number else None }}}}"
        )
    return (
        f"{{% set o = value_json.{head} if value_json is mapping else none %}}"
        f"{{% set v = o.{leaf} if o is mapping else none %}}"
        f"{{{{ (v{scale}) | round(6) if v is number else None }}}}"
    )


# the worst of the three drift PSIs that have a value
_DRIFT = (
    "{% set d = value_json.drift if value_json is mapping else none %}"
    "{% set v = [d.input_psi, d.output_psi, d.confidence_psi] | select('number') | list "
    "if d is mapping else [] %}"
    "{{ (v | max) | round(6) if v else None }}"
)
_DRIFT_ALERT = (
    "{% set d = value_json.drift if value_json is mapping else none %}"
    "{{ 'ON' if d is mapping and d.alert is sameas true else 'OFF' }}"
)
_MODEL = (
    "{% set m = value_json.model if value_json is mapping else none %}"
    "{{ m.name ~ ' v' ~ m.version if m is mapping and m.version is number else None }}"
)
_MODEL_ATTRS = "{{ (value_json.model if value_json.model is mapping else {}) | tojson }}"


def components(device: str) -> dict[str, dict[str, Any]]:
    """The entities, keyed by component id; state topics are the agent's own topics."""
    node = node_id(device)
    telemetry = c.topic(device, c.TELEMETRY)
    status = c.topic(device, c.STATUS)

    def sensor(key: str, name: str, template: str, **extra: Any) -> tuple[str, dict[str, Any]]:
        return key, {
            "p": "sensor",
            "name": name,
            "unique_id": f"edgekit_{node}_{key}",
            "state_topic": telemetry,
            "value_template": template,
            **extra,
        }

    measured = {"state_class": "measurement"}
    items = [
        sensor("latency_p95", "Latency p95", _num("latency_ms.p95"),
               device_class="duration", unit_of_measurement="ms", suggested_display_precision=2,
               **measured),
        sensor("throughput", "Throughput", _num("throughput_per_s"),
               unit_of_measurement="inferences/s", icon="mdi:speedometer", **measured),
        sensor("error_rate", "Error rate", _num("error_rate", " * 100"),
               unit_of_measurement="%", icon="mdi:alert-circle-outline", **measured),
        sensor("drift_psi", "Drift (worst PSI)", _DRIFT, icon="mdi:chart-bell-curve", **measured),
        sensor("accuracy", "Live accuracy", _num("accuracy.value", " * 100"),
               unit_of_measurement="%", icon="mdi:bullseye-arrow", **measured),
        sensor("model", "Model", _MODEL, state_topic=status, icon="mdi:brain",
               json_attributes_topic=status, json_attributes_template=_MODEL_ATTRS,
               entity_category="diagnostic"),
    ]  # fmt: skip
    out = dict(items)
    out["drift_alert"] = {
        "p": "binary_sensor",
        "name": "Drift alert",
        "unique_id": f"edgekit_{node}_drift_alert",
        "device_class": "problem",
        "state_topic": telemetry,
        "value_template": _DRIFT_ALERT,
        "payload_on": "ON",
        "payload_off": "OFF",
    }
    return out


def device_config(device: str) -> dict[str, Any]:
    """The one discovery payload for ``device`` (see the module docstring)."""
    node = node_id(device)
    return {
        "dev": {
            "ids": [f"edgekit_{node}"],
            "name": device,
            "mf": "edgekit",
            "mdl": "edgekit agent",
            "sw": __version__,
        },
        "o": {"name": "edgekit", "sw": __version__},
        "availability": [
            {
                "topic": c.topic(device, c.STATUS),
                "value_template": "{{ value_json.state if value_json is mapping else 'offline' }}",
                "payload_available": "online",
                "payload_not_available": "offline",
            }
        ],
        "qos": 1,
        "cmps": components(device),
    }


class HaDiscovery:
    """Publishes the config on every connect and on Home Assistant's ``online``."""

    def __init__(self, device: str, transport: Transport, prefix: str) -> None:
        self.device = device
        self.transport = transport
        self.prefix = check_prefix(prefix, "ha_discovery.prefix")
        self.topic = config_topic(prefix, device)
        self.published = 0

    def attach(self) -> None:
        """Before the transport connects: subscribe to HA's status, publish on connect."""
        self.transport.subscribe(f"{self.prefix}/status", self.on_ha_status, qos=1)
        self.transport.add_connect_listener(self.publish)

    def publish(self) -> None:
        payload = c.encode_json(device_config(self.device))
        if self.transport.publish(self.topic, payload, qos=1, retain=True) is not None:
            self.published += 1
            log.info("Home Assistant discovery config sent to %s", self.topic)

    def on_ha_status(self, _topic: str, payload: bytes) -> None:
        """``online`` is Home Assistant's birth message: it (re)reads discovery now."""
        if payload.strip().lower() == b"online":
            self.publish()
