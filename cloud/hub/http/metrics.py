"""``/metrics``: fleet-level Prometheus series in the text exposition format.

Per model version: devices running it, inference rate and error rate (summed over the
devices' latest telemetry), mean p95 latency and the worst drift score. Counters of the
MQTT bridge (messages stored, rejected) show whether the hub keeps up.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flask import Blueprint, Response
from sqlalchemy import select

from cloud.hub.context import hub
from cloud.hub.storage import Device, Rollout

metrics_bp = Blueprint("metrics", __name__)


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _line(name: str, labels: dict[str, Any], value: float) -> str:
    inner = ",".join(f'{k}="{_esc(str(v))}"' for k, v in labels.items())
    return f"{name}{{{inner}}} {value:.6g}" if inner else f"{name} {value:.6g}"


def render(devices: list[Device], rollout_states: list[str], bridge: dict[str, int]) -> str:
    out: list[str] = []

    def family(name: str, kind: str, help_: str, samples: list[str]) -> None:
        out.extend([f"# HELP {name} {help_}", f"# TYPE {name} {kind}", *samples])

    family(
        "edgekit_devices", "gauge", "Known devices by state.",
        [
            _line("edgekit_devices", {"state": "online"}, sum(d.online for d in devices)),
            _line("edgekit_devices", {"state": "offline"}, sum(not d.online for d in devices)),
            _line("edgekit_devices", {"state": "unenrolled"}, sum(not d.enrolled for d in devices)),
        ],
    )  # fmt: skip
    per: dict[tuple[str, str], list[Device]] = defaultdict(list)
    for d in devices:
        if d.online and d.model_name is not None:
            per[(d.model_name, str(d.model_version))].append(d)
    running, rate, errors, p95, drift = [], [], [], [], []
    for (name, version), devs in sorted(per.items()):
        lab = {"model": name, "version": version}
        running.append(_line("edgekit_version_devices", lab, len(devs)))
        k = [d.kpis or {} for d in devs]
        thr = [
            x["throughput_per_s"] for x in k if isinstance(x.get("throughput_per_s"), (int, float))
        ]
        rate.append(_line("edgekit_inference_rate", lab, sum(thr)))
        ers = [x["error_rate"] for x in k if isinstance(x.get("error_rate"), (int, float))]
        errors.append(_line("edgekit_error_rate", lab, sum(ers) / len(ers) if ers else 0.0))
        lat = [x["p95_latency_ms"] for x in k if isinstance(x.get("p95_latency_ms"), (int, float))]
        if lat:
            p95.append(_line("edgekit_latency_p95_ms", lab, sum(lat) / len(lat)))
        dr = [x["drift"] for x in k if isinstance(x.get("drift"), (int, float))]
        if dr:
            drift.append(_line("edgekit_drift_score", lab, max(dr)))
    family("edgekit_version_devices", "gauge", "Online devices per model version.", running)
    family("edgekit_inference_rate", "gauge", "Inferences per second per model version.", rate)
    family("edgekit_error_rate", "gauge", "Mean error share per model version.", errors)
    family("edgekit_latency_p95_ms", "gauge", "Mean p95 latency (ms) per model version.", p95)
    family("edgekit_drift_score", "gauge", "Worst input/output PSI per model version.", drift)
    states: dict[str, int] = defaultdict(int)
    for s in rollout_states:
        states[s] += 1
    family(
        "edgekit_rollouts", "gauge", "Rollouts by state.",
        [_line("edgekit_rollouts", {"state": s}, n) for s, n in sorted(states.items())],
    )  # fmt: skip
    family(
        "edgekit_bridge_messages_total", "counter", "MQTT messages handled by the bridge.",
        [
            _line("edgekit_bridge_messages_total", {"result": k}, v)
            for k, v in sorted(bridge.items())
        ],
    )  # fmt: skip
    return "\n".join(out) + "\n"


@metrics_bp.get("/metrics")
def metrics() -> Response:
    h = hub()
    s = h.request_session()
    devices = list(s.scalars(select(Device)))
    states = list(s.scalars(select(Rollout.state)))
    counters = dict(h.bridge.counters) if h.bridge is not None else {}
    return Response(render(devices, states, counters), mimetype="text/plain; version=0.0.4")
