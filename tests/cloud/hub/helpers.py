"""Build contract payloads the way agents send them."""

from __future__ import annotations

import time
from typing import Any

from cloud.hub.config import HubConfig
from cloud.hub.ingest import MqttBridge
from edge.contract import Event, ModelRef, Status, Telemetry, encode_json, topic


def status(
    device: str,
    version: int | None = 1,
    seq: int = 1,
    state: str = "online",
    capabilities: dict[str, Any] | None = None,
) -> tuple[str, bytes]:
    model = ModelRef("digits", version, "onnxruntime", "fp32") if version else None
    caps = {"cores": 2} if capabilities is None else capabilities
    s = Status(device, time.time(), seq, state, "0.1.0", model, "boot1", True, caps)
    return topic(device, "status"), encode_json(s.to_dict())


def telemetry(
    device: str, seq: int, version: int = 1, ts: float | None = None, **metrics: Any
) -> tuple[str, bytes]:
    m: dict[str, Any] = {
        "interval_s": 10, "inferences": 50, "errors": {"timeout": 1}, "error_rate": 1 / 51,
        "latency_ms": {"p50": 1.0, "p95": 2.0, "p99": 3.0, "mean": 1.1, "max": 4.0},
        "throughput_per_s": 5.0, "confidence_mean": 0.9,
        "drift": {"input_psi": 0.05, "output_psi": 0.02, "threshold": 0.2, "alert": False},
        "accuracy": {"value": 0.95, "n": 20},
    }  # fmt: skip
    m.update(metrics)
    t = Telemetry(device, ts or time.time(), seq, ModelRef("digits", version), m, "boot1")
    return topic(device, "telemetry"), encode_json(t.to_dict())


def event(device: str, seq: int, step: str, rollout: str | None = None,
          command: str | None = None, version: int | None = None) -> tuple[str, bytes]:  # fmt: skip
    e = Event(device, time.time(), seq, "deploy", f"step {step}", step, rollout, command, version)
    return topic(device, "events"), encode_json(e.to_dict())


def feed(app: Any, *messages: tuple[str, bytes]) -> MqttBridge:
    """Store messages exactly as the MQTT bridge would (parse + batch write)."""
    h = app.extensions["edgekit_hub"]
    bridge = MqttBridge(
        HubConfig(**{**h.config.__dict__, "broker_url": "mqtt://127.0.0.1:1"}), h.db
    )
    bridge.flush(list(messages))
    return bridge
