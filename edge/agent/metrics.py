"""``GET /metrics`` on the agent's local HTTP endpoint: this device as Prometheus series.

Rendered by prometheus_client from a fresh registry per scrape (:class:`AgentCollector`
reads the agent's monitor, outbox and reporter; nothing is double-bookkept). Counters run
since the agent started and survive model changes (``Monitor.inherit_totals``); an agent
restart starts them again at 0, which Prometheus' ``rate()`` reads as a counter reset.
Latency uses the contract's fixed bounds (``LATENCY_BUCKETS_S``), the same as the
``latency_histogram`` in telemetry, so device and hub histograms line up. Also exported:
prometheus_client's standard ``process_*`` series (Linux), for the usual dashboards.

Every series is listed in docs/agent.md ("Metrics").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from edge.agent.agent import Agent

__all__ = ["CONTENT_TYPE_LATEST", "AgentCollector", "render"]
DRIFT_SIGNALS = ("input", "output", "confidence")  # the telemetry drift block's *_psi


def _rss_probe() -> Callable[[], float | None]:
    try:
        import psutil
    except ImportError:
        return lambda: None
    proc = psutil.Process()

    def rss() -> float | None:
        try:
            return float(proc.memory_info().rss)
        except psutil.Error:
            return None

    return rss


_rss = _rss_probe()


class AgentCollector:
    """The agent's series; ``collect`` runs on the HTTP thread of each scrape."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        agent = self.agent
        monitor = agent.monitor
        totals = monitor.totals()
        inf = CounterMetricFamily("edgekit_agent_inferences", "Successful inferences.")
        inf.add_metric([], totals["inferences"])
        err = CounterMetricFamily(
            "edgekit_agent_inference_errors", "Failed inferences by kind.", labels=["kind"]
        )
        for kind, n in sorted(totals["errors"].items()):
            err.add_metric([kind], n)
        rej = CounterMetricFamily(
            "edgekit_agent_rejected_inputs",
            "Inputs refused before inference, by reason (not model errors).",
            labels=["reason"],
        )
        for code, n in sorted(totals["rejected"].items()):
            rej.add_metric([code], n)
        yield from (inf, err, rej)
        hist = totals["latency"]
        lat = HistogramMetricFamily(
            "edgekit_agent_inference_latency_seconds", "Latency of successful inferences."
        )
        bounds = [floatToGoString(b) for b in hist.le] + ["+Inf"]
        lat.add_metric([], list(zip(bounds, hist.cumulative(), strict=True)), hist.sum_s)
        yield lat
        yield from self._outbox(agent.outbox.stats())
        yield from self._drift(agent.reporter.last_drift)
        yield from self._capture(agent.capture.stats())
        yield from self._model()
        uptime = GaugeMetricFamily(
            "edgekit_agent_uptime_seconds", "Seconds since the agent started."
        )
        uptime.add_metric([], totals["uptime_s"])
        yield uptime
        rss = _rss()
        if rss is not None:
            mem = GaugeMetricFamily(
                "edgekit_agent_memory_rss_bytes", "Resident memory of the agent process."
            )
            mem.add_metric([], rss)
            yield mem

    @staticmethod
    def _outbox(stats: dict[str, int]) -> Iterator[Metric]:
        queued = GaugeMetricFamily(
            "edgekit_agent_outbox_messages", "Messages in the disk outbox waiting for the broker."
        )
        queued.add_metric([], stats.get("queued", 0))
        size = GaugeMetricFamily("edgekit_agent_outbox_bytes", "Bytes the disk outbox holds.")
        size.add_metric([], stats.get("bytes", 0))
        dropped = CounterMetricFamily(
            "edgekit_agent_outbox_dropped_messages",
            "Messages dropped because the outbox was full (since it was created).",
        )
        dropped.add_metric([], stats.get("dropped", 0))
        return iter((queued, size, dropped))

    @staticmethod
    def _drift(block: dict[str, Any] | None) -> Iterator[Metric]:
        """From the last telemetry's drift block (scores are computed per interval)."""
        psi = GaugeMetricFamily(
            "edgekit_agent_drift_score",
            "PSI against the bundle's reference in the last telemetry interval.",
            labels=["signal"],
        )
        alert = GaugeMetricFamily(
            "edgekit_agent_drift_alert", "1 while the last telemetry raised a drift alert."
        )
        block = block if isinstance(block, dict) else {}
        for signal in DRIFT_SIGNALS:
            value = block.get(f"{signal}_psi")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                psi.add_metric([signal], float(value))
        alert.add_metric([], 1 if block.get("alert") is True else 0)
        return iter((psi, alert))

    @staticmethod
    def _capture(stats: dict[str, Any]) -> Iterator[Metric]:
        """Capture (edge/capture): totals since the store was created, and what waits."""
        on = GaugeMetricFamily("edgekit_agent_capture_enabled", "1 while capture is on.")
        on.add_metric([], 1 if stats.get("enabled") else 0)
        pending = GaugeMetricFamily(
            "edgekit_agent_capture_pending_samples", "Captured samples waiting for upload."
        )
        pending.add_metric([], stats.get("pending", 0))
        size = GaugeMetricFamily(
            "edgekit_agent_capture_pending_bytes", "Disk bytes of the samples waiting."
        )
        size.add_metric([], stats.get("pending_bytes", 0))
        samples = CounterMetricFamily(
            "edgekit_agent_capture_samples",
            "Samples by outcome: captured, dropped (budget, full disk), uploaded, rejected "
            "(by the hub), rate_limited, busy and errors (not kept).",
            labels=["outcome"],
        )
        for outcome in ("captured", "dropped", "uploaded", "rejected", "rate_limited", "busy",
                        "errors"):  # fmt: skip
            samples.add_metric([outcome], stats.get(outcome, 0))
        return iter((on, pending, size, samples))

    def _model(self) -> Iterator[Metric]:
        info = InfoMetricFamily(
            "edgekit_agent_model",
            "The model the agent serves (no series before the first install).",
            labels=["model", "version", "runtime", "precision"],
        )
        current = self.agent.server.current
        if current is not None:
            ref = current.ref()
            labels = [ref.name, str(ref.version), ref.runtime or "", ref.precision or ""]
            info.add_metric(labels, {})
        yield info


def render(agent: Agent) -> bytes:
    """The exposition text of one scrape."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AgentCollector(agent))
    registry.register(ProcessCollector(registry=None))
    return generate_latest(registry)
