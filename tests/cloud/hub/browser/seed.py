"""Seed a hub database with a small fleet through the hub's own storage code."""

from __future__ import annotations

import math
import time
from typing import Any

from cloud.hub.ingest.telemetry_store import write_batch
from cloud.hub.storage import Device, EventRow
from edge.contract import ModelRef, Telemetry

# id, tags, enrolled, online, model version or None, capabilities
DeviceSeed = tuple[str, list[str], bool, bool, int | None, dict[str, Any]]

FLEET: tuple[DeviceSeed, ...] = (
    ("cam-1", ["lab", "floor-1"], True, True, 1, {"runtimes": ["onnxruntime"], "cpu": "x86_64"}),
    ("cam-2", ["lab"], True, True, 1, {"runtimes": ["onnxruntime"], "cpu": "aarch64"}),
    ("gate-7", ["floor-2"], True, False, 2, {"runtimes": ["litert"]}),
    ("rogue-9", [], False, True, None, {}),
)  # fmt: skip


def metrics(i: int, p95: float = 4.0, drift: float = 0.05) -> dict[str, Any]:
    wave = math.sin(i / 4)
    return {
        "interval_s": 10, "inferences": 100 + i, "errors": 1 if i % 7 == 0 else 0,
        "latency_ms": {"p50": 2.0 + 0.3 * wave, "p95": p95 + wave, "p99": p95 + 2, "max": 9},
        "throughput_per_s": 10 + 2 * wave, "confidence_mean": 0.9 + 0.03 * wave,
        "drift": {"input_psi": drift + i / 1000, "output_psi": drift / 2, "threshold": 0.2},
        "accuracy": {"value": 0.95 - 0.01 * wave, "n": 50},
    }  # fmt: skip


def telemetry(device: str, ts: float, seq: int, version: int | None, **kw: Any) -> Telemetry:
    model = ModelRef("digits", version, "onnxruntime", "fp32") if version else None
    return Telemetry(device=device, ts=ts, seq=seq, model=model, metrics=metrics(seq, **kw))


def seed_fleet(db: Any, now: float | None = None, points: int = 60) -> None:
    """Devices of FLEET, ``points`` telemetry samples each (10 s apart) and a few events."""
    now = now or time.time()
    for dev_id, tags, enrolled, online, version, caps in FLEET:
        db.add(
            Device(
                id=dev_id, tags=tags, enrolled=enrolled, online=online, first_seen=now - 3600,
                last_seen=now - (0 if online else 900), agent_version="0.1.0",
                model_name="digits" if version else None, model_version=version,
                model_runtime="onnxruntime" if version else None,
                model_precision="fp32" if version else None, capabilities=caps, kpis={},
            )
        )  # fmt: skip
    db.flush()
    # An offline device's telemetry ends when it was last seen (900 s ago).
    batch = [
        telemetry(
            dev_id,
            now - (0 if online else 900) - 10 * (points - i),
            i,
            version,
            p95=4.0 if dev_id != "cam-2" else 6.0,
        )
        for dev_id, _t, _e, online, version, _c in FLEET
        if version
        for i in range(points)
    ]
    write_batch(db, batch)
    for seq, (step, msg) in enumerate(
        [("downloading", "fetching bundle"), ("verifying", "signature ok"),
         ("self_test", "golden set agrees"), ("committed", "digits v1 committed")]
    ):  # fmt: skip
        db.add(
            EventRow(
                device_id="cam-1", ts=now - 600 + seq * 5, seq=1000 + seq, boot="b1",
                kind="deploy", step=step, message=msg, rollout=None, command="c-1", version=1,
                detail={"latency_ms": 2.1} if step == "self_test" else {},
            )
        )  # fmt: skip
    db.flush()
