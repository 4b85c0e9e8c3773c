"""``/metrics``: the fleet as Prometheus series, rendered by prometheus_client.

Each scrape builds a fresh ``CollectorRegistry`` around one :class:`FleetCollector` that
reads the database, so every hub process answers the same (nothing is process-local) and
``generate_latest`` does the text format: exact values, escaping, ``_total`` / ``_bucket``
suffixes. Base units only (seconds), counters as counters, and label values that partition
what they count, so ``sum()`` over a label never counts a device or a message twice.

* gauges from the device rows: ``edgekit_devices{state}`` (online + offline = all),
  ``edgekit_devices_by_enrollment{enrollment}`` (enrolled + unenrolled = all), and per model
  version over its online devices ``edgekit_version_devices``, ``edgekit_drift_score``
  (worst PSI) and ``edgekit_drift_alert_devices``; ``edgekit_rollouts{state}``;
* counters from ``fleet_counters`` (cloud/hub/ingest/fleet_counters.py: summed from the
  devices' interval counts, so a device restart is no counter reset): per model version
  ``edgekit_inferences_total``, ``edgekit_inference_errors_total``,
  ``edgekit_rejected_inputs_total`` and the histogram ``edgekit_inference_latency_seconds``
  merged from the devices' ``latency_histogram`` buckets; the MQTT bridge's counters of
  every hub process (``edgekit_bridge_*``, one family per question).

Every series is listed in docs/hub.md ("Metrics"); docs/grafana/edgekit-fleet.json uses them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from flask import Blueprint, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString
from sqlalchemy import select

from cloud.hub.context import hub
from cloud.hub.ingest import fleet_counters
from cloud.hub.storage import Device, Rollout

metrics_bp = Blueprint("metrics", __name__)
MV = ["model", "version"]

# the bridge's counter names (cloud/hub/ingest/bridge.py, batch_writer.py) by family:
# what became of each received message (one result each) ...
MESSAGE_RESULTS = {
    "stored": "stored", "rejected": "rejected", "duplicate": "duplicate",
    "cleared": "cleared", "overflow": "overflow", "lost": "lost", "db_errors": "db_error",
}  # fmt: skip
# ... the stored ones by kind (their sum is result="stored"), and the commands sent
STORED_KINDS = {"stored_status": "status", "stored_telemetry": "telemetry",
                "stored_event": "event"}  # fmt: skip
COMMAND_RESULTS = {"commands": "sent", "publish_failed": "failed"}


@dataclass(frozen=True)
class DeviceRow:
    """What the gauges need of one device (tests build these without a database)."""

    online: bool
    enrolled: bool
    model_name: str | None
    model_version: int | None
    drift: float | None = None
    drift_alert: bool = False

    @staticmethod
    def of(d: Device) -> DeviceRow:
        k = d.kpis or {}
        drift = k.get("drift")
        return DeviceRow(
            online=bool(d.online),
            enrolled=bool(d.enrolled),
            model_name=d.model_name,
            model_version=d.model_version,
            drift=float(drift) if isinstance(drift, (int, float)) else None,
            drift_alert=k.get("drift_alert") is True,
        )


class FleetCollector:
    """A prometheus_client collector over one snapshot of the database."""

    def __init__(
        self,
        devices: list[DeviceRow],
        rollout_states: list[str],
        counters: fleet_counters.Counters,
    ) -> None:
        self.devices, self.rollout_states, self.counters = devices, rollout_states, counters

    def collect(self) -> Iterator[Metric]:
        yield from self._devices()
        yield from self._versions()
        states = GaugeMetricFamily("edgekit_rollouts", "Rollouts by state.", labels=["state"])
        per_state: dict[str, int] = defaultdict(int)
        for s in self.rollout_states:
            per_state[s] += 1
        for s, n in sorted(per_state.items()):
            states.add_metric([s], n)
        yield states
        yield from self._counters()
        yield from bridge_families(self.counters.bridge)

    def _devices(self) -> Iterator[Metric]:
        devs = self.devices
        state = GaugeMetricFamily(
            "edgekit_devices", "Known devices by connection state (sums to all devices).",
            labels=["state"],
        )  # fmt: skip
        online = sum(d.online for d in devs)
        state.add_metric(["online"], online)
        state.add_metric(["offline"], len(devs) - online)
        enrolled = sum(d.enrolled for d in devs)
        enroll = GaugeMetricFamily(
            "edgekit_devices_by_enrollment",
            "Known devices by enrollment (sums to all devices).",
            labels=["enrollment"],
        )
        enroll.add_metric(["enrolled"], enrolled)
        enroll.add_metric(["unenrolled"], len(devs) - enrolled)
        return iter((state, enroll))

    def _versions(self) -> Iterator[Metric]:
        per: dict[tuple[str, int], list[DeviceRow]] = defaultdict(list)
        for d in self.devices:
            if d.online and d.model_name is not None and d.model_version is not None:
                per[(d.model_name, d.model_version)].append(d)
        running = GaugeMetricFamily(
            "edgekit_version_devices", "Online devices per model version.", labels=MV
        )
        drift = GaugeMetricFamily(
            "edgekit_drift_score",
            "Worst drift PSI (max of input and output) over a version's online devices.",
            labels=MV,
        )
        alerts = GaugeMetricFamily(
            "edgekit_drift_alert_devices",
            "Online devices of a version whose latest telemetry raised a drift alert.",
            labels=MV,
        )
        for (name, version), devs in sorted(per.items()):
            lab = [name, str(version)]
            running.add_metric(lab, len(devs))
            alerts.add_metric(lab, sum(d.drift_alert for d in devs))
            scores = [d.drift for d in devs if d.drift is not None]
            if scores:
                drift.add_metric(lab, max(scores))
        return iter((running, drift, alerts))

    def _counters(self) -> Iterator[Metric]:
        inf = CounterMetricFamily(
            "edgekit_inferences", "Successful inferences reported by devices.", labels=MV
        )
        err = CounterMetricFamily(
            "edgekit_inference_errors", "Failed inferences reported by devices.", labels=MV
        )
        rej = CounterMetricFamily(
            "edgekit_rejected_inputs",
            "Inputs devices refused before inference (not model errors).",
            labels=MV,
        )
        lat = HistogramMetricFamily(
            "edgekit_inference_latency_seconds",
            "Inference latency merged from the devices' latency histograms.",
            labels=MV,
        )
        for (name, version), v in sorted(self.counters.versions.items()):
            lab = [name, str(version)]
            inf.add_metric(lab, v.inferences)
            err.add_metric(lab, v.errors)
            rej.add_metric(lab, v.rejected)
            if v.buckets:
                running, buckets = 0, []
                for label in fleet_counters.BUCKET_LABELS:
                    running += v.buckets.get(label, 0)
                    le = label if label == fleet_counters.INF_LABEL else floatToGoString(label)
                    buckets.append((le, running))
                lat.add_metric(lab, buckets, v.latency_sum)
        return iter((inf, err, rej, lat))


def bridge_families(bridge: Mapping[str, int]) -> Iterator[Metric]:
    """The MQTT bridge's counters, summed over hub processes, one family per question."""
    received = CounterMetricFamily(
        "edgekit_bridge_received_messages", "MQTT messages the hub's bridge received."
    )
    received.add_metric([], bridge.get("received", 0))
    yield received
    for name, help_, label, mapping in (
        ("edgekit_bridge_messages", "What became of each received message (one result each).",
         "result", MESSAGE_RESULTS),
        ("edgekit_bridge_stored_messages", "Stored messages by kind (sum = result=stored).",
         "kind", STORED_KINDS),
        ("edgekit_bridge_commands", "Commands the bridge published, by result.",
         "result", COMMAND_RESULTS),
    ):  # fmt: skip
        fam = CounterMetricFamily(name, help_, labels=[label])
        for key, value in mapping.items():
            fam.add_metric([value], bridge.get(key, 0))
        yield fam
    clamped = CounterMetricFamily(
        "edgekit_bridge_clock_clamped_messages",
        "Stored reports whose device clock ran ahead (stored at arrival time).",
    )
    clamped.add_metric([], bridge.get("clock_clamped", 0))
    restarts = CounterMetricFamily(
        "edgekit_bridge_writer_restarts", "Times a hub's writer process was started again."
    )
    restarts.add_metric([], bridge.get("writer_restarts", 0))
    yield clamped
    yield restarts


def render(
    devices: list[DeviceRow], rollout_states: list[str], counters: fleet_counters.Counters
) -> bytes:
    """The exposition text of one snapshot."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(devices, rollout_states, counters))
    return generate_latest(registry)


@metrics_bp.get("/metrics")
def metrics() -> Response:
    s = hub().request_session()
    devices = [DeviceRow.of(d) for d in s.scalars(select(Device))]
    states = list(s.scalars(select(Rollout.state)))
    return Response(
        render(devices, states, fleet_counters.read(s)), content_type=CONTENT_TYPE_LATEST
    )
