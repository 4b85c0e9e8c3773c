"""What the agent tells the world: retained status (and its will), events and telemetry.

Every payload carries ``schema``, ``device``, ``ts``, ``boot`` and ``seq``; ``seq`` counts
per topic (status, telemetry, events) from 0 at every start, so a consumer that sees a gap
in one device's telemetry ``seq`` within one ``boot`` knows it lost one. Events and
telemetry go through the disk-backed outbox (in order, QoS 1, across outages); the status
is published directly, retained, and re-sent on every reconnect and model change.

A drift alert is said by the device itself when it starts and when it clears: a log
warning naming the feature (or signal) that crossed, and an ``alert`` / ``info`` event.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge import __version__
from edge import contract as c
from edge.contract import Event, ModelRef, Status, Telemetry
from edge.errors import EdgekitError
from edge.messaging import Outbox, Transport, Will
from edge.serving import (
    DEFAULT_DRIFT_FEATURE_THRESHOLD,
    DEFAULT_DRIFT_THRESHOLD,
    LoadedModel,
    ModelServer,
    Monitor,
)

log = logging.getLogger("edgekit.agent")


class Reporter:
    """Status, events and telemetry of one agent run (one ``boot``)."""

    def __init__(
        self,
        device: str,
        boot: str,
        transport: Transport,
        outbox: Outbox,
        server: ModelServer,
        *,
        telemetry_interval: Callable[[], float],
        enrolled: bool = False,
    ) -> None:
        self.device = device
        self.boot = boot
        self.transport = transport
        self.outbox = outbox
        self.server = server
        self.telemetry_interval = telemetry_interval  # read each time: a remote key
        self.enrolled = enrolled
        self.capabilities: dict[str, Any] = {}
        self.monitor = Monitor(["none"])
        self._monitor_model: LoadedModel | None = None
        self.drift_thresholds = (DEFAULT_DRIFT_THRESHOLD, DEFAULT_DRIFT_FEATURE_THRESHOLD)
        self._drift_alerting = False
        self.last_drift: dict[str, Any] | None = None  # of the last telemetry (/metrics)
        self.capture_stats: Callable[[], dict[str, Any]] | None = None  # edge/capture
        self._will_model: ModelRef | None = None  # what the transport's will names
        self._seq = {c.STATUS: 0, c.TELEMETRY: 0, c.EVENTS: 0}
        self._lock = threading.Lock()
        self._malformed = 0
        self._oversize_seen = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ status

    def _next_seq(self, kind: str) -> int:
        with self._lock:
            self._seq[kind] += 1
            return self._seq[kind] - 1

    def status(self) -> Status:
        model = self.server.current
        return Status(
            device=self.device,
            ts=time.time(),
            seq=self._next_seq(c.STATUS),
            state="online",
            agent_version=__version__,
            model=model.ref() if model else None,
            boot=self.boot,
            enrolled=self.enrolled,
            capabilities=self.capabilities,
        )

    def will(self) -> Will:
        """The retained ``offline`` status the broker publishes if we vanish: it names the
        model served when it was made, so the retained status keeps what the device ran.
        (``ts`` is when the will was armed, not when the device vanished.)"""
        model = self.server.current
        offline = Status(
            self.device,
            time.time(),
            -1,
            "offline",
            __version__,
            model=model.ref() if model else None,
            boot=self.boot,
            enrolled=self.enrolled,
        )
        return Will(c.topic(self.device, c.STATUS), c.encode_json(offline.to_dict()), 1, True)

    def rearm_will(self) -> None:
        """Give the transport a will naming the model served now, if that changed since
        the last one (the transport reconnects to hand it to the broker)."""
        model = self.server.current
        ref = model.ref() if model else None
        if ref != self._will_model:
            self._will_model = ref
            self.transport.set_will(self.will())

    def publish_status(self) -> None:
        """Retained ``online`` status; re-sent on every (re)connect and model change."""
        payload = c.encode_json(self.status().to_dict())
        self.transport.publish(c.topic(self.device, c.STATUS), payload, qos=1, retain=True)

    def model_changed(self, *, publish: bool) -> None:
        """A new model is served: fresh drift reference and labels, and (if ``publish``
        and connected) a new status."""
        model = self.server.current
        if model is not None and model is not self._monitor_model:
            try:
                self.monitor = monitor_for(model, self.monitor, self.drift_thresholds)
            except Exception as exc:  # a bad reference must not stop serving
                log.error("monitor for %s: %s", model.slot.id, exc)
            self._monitor_model = model
        if publish and self.transport.connected:
            self.publish_status()
        self.rearm_will()

    # ------------------------------------------------------------------ events

    def emit(
        self,
        kind: str,
        step: str | None,
        message: str,
        *,
        command: str | None = None,
        rollout: str | None = None,
        version: int | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Queue one Event in the outbox (delivered in order, QoS 1, across outages)."""
        event = Event(
            device=self.device,
            ts=time.time(),
            seq=self._next_seq(c.EVENTS),
            kind=kind,
            message=message,
            step=step,
            rollout=rollout,
            command=command,
            version=version,
            detail=jsonable(detail or {}),
            boot=self.boot,
        )
        log.info("event %s/%s: %s", kind, step, message)
        try:
            self.outbox.put(c.topic(self.device, c.EVENTS), c.encode_json(event.to_dict()))
        except (EdgekitError, ValueError) as exc:
            log.error("event not queued: %s", exc)

    # ------------------------------------------------------------------ telemetry

    def count_malformed(self, why: str) -> None:
        """An inference request nobody can be answered for (reported in telemetry)."""
        with self._lock:
            self._malformed += 1
        log.warning("malformed inference request dropped: %s", why)

    def _take_malformed(self) -> int:
        with self._lock:
            n, self._malformed = self._malformed, 0
        return n

    def set_drift_thresholds(self, threshold: float, feature_threshold: float) -> None:
        """Alert thresholds for this and every later monitor (config keys
        ``drift_threshold`` and ``drift_feature_threshold``)."""
        self.monitor.set_drift_thresholds(threshold, feature_threshold)
        self.drift_thresholds = (threshold, feature_threshold)

    def report_drift(self, drift: Any) -> None:
        """Log and send an event when a drift alert starts or clears, naming what moved."""
        if not isinstance(drift, dict):
            return
        alert = drift.get("alert") is True
        if alert == self._drift_alerting:
            return
        self._drift_alerting = alert
        keys = ("alert_on", "worst", "features", "input_psi", "output_psi", "confidence_psi")
        detail = {"drift": {k: drift.get(k) for k in keys}}
        if alert:
            message = f"drift alert: {describe_drift(drift)}"
            log.warning("%s", message)
            self.emit("alert", None, message, detail=detail)
        else:
            worst = drift.get("worst")
            tail = f" (worst {worst['name']} PSI {worst['psi']:.3f})" if worst else ""
            message = f"drift alert cleared{tail}"
            log.warning("%s", message)
            self.emit("info", None, message, detail=detail)

    def publish_telemetry(self) -> None:
        """One telemetry message from the monitor's current interval, through the outbox."""
        metrics = self.monitor.snapshot(outbox=self.outbox.stats())
        self.last_drift = metrics.get("drift")
        try:
            self.report_drift(metrics.get("drift"))
        except Exception:  # saying it must never cost the telemetry itself
            log.exception("drift alert report failed")
        oversize = self.transport.stats.get("dropped_oversize", 0)
        extra = {"malformed": self._take_malformed(), "oversize": oversize - self._oversize_seen}
        self._oversize_seen = oversize
        if self.capture_stats is not None:
            metrics["capture"] = self.capture_stats()
        rejected = metrics.setdefault("rejected_inputs", {})
        rejected.update({k: v for k, v in extra.items() if v})
        model = self.server.current
        telemetry = Telemetry(
            device=self.device,
            ts=time.time(),
            seq=self._next_seq(c.TELEMETRY),
            model=model.ref() if model else None,
            metrics=jsonable(metrics),
            boot=self.boot,
        )
        self.outbox.put(c.topic(self.device, c.TELEMETRY), c.encode_json(telemetry.to_dict()))

    def start_telemetry(self) -> None:
        self._thread = threading.Thread(target=self._telemetry_loop, name="telemetry", daemon=True)
        self._thread.start()

    def stop_telemetry(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _telemetry_loop(self) -> None:
        while not self._stop.wait(self.telemetry_interval()):
            try:
                self.publish_telemetry()
            except Exception:
                log.exception("telemetry failed")


def describe_drift(drift: dict[str, Any]) -> str:
    """One line naming what crossed: the worst feature first, then the other signals."""
    parts: list[str] = []
    on = drift.get("alert_on") or []
    worst = drift.get("worst")
    granularity = drift.get("granularity") or "feature"
    if worst and "feature" in on:
        parts.append(
            f"{granularity} {worst['name']} PSI {worst['psi']:.3f} > {drift['feature_threshold']}"
        )
    labels = {"mean": ("input_psi", "mean input"), "output": ("output_psi", "predicted classes"),
              "confidence": ("confidence_psi", "confidence")}  # fmt: skip
    for signal in ("mean", "output", "confidence"):
        if signal in on:
            key, label = labels[signal]
            parts.append(f"{label} PSI {drift[key]:.3f} > {drift['threshold']}")
    if worst and "feature" not in on:
        parts.append(f"worst {granularity} {worst['name']} PSI {worst['psi']:.3f}")
    return "; ".join(parts) or "drift"


def output_step(model: LoadedModel) -> float | None:
    """The quantisation step of the served variant's scores (int8 outputs), else None."""
    for art in model.manifest.artifacts:
        if (art.runtime, art.precision) == (model.runtime, model.precision) and art.outputs:
            return art.outputs[0].scale
    return None


def monitor_for(
    model: LoadedModel,
    previous: Monitor,
    thresholds: tuple[float, float] = (DEFAULT_DRIFT_THRESHOLD, DEFAULT_DRIFT_FEATURE_THRESHOLD),
) -> Monitor:
    """A monitor for ``model`` (its labels and drift reference), keeping the run totals."""
    from edge.bundle import entry_path

    reference = None
    if model.manifest.reference is not None:
        path: Path = entry_path(model.slot.bundle_dir, model.manifest.reference)
        reference = json.loads(path.read_bytes())
    monitor = Monitor(
        list(model.manifest.labels),
        reference,
        thresholds[0],
        feature_threshold=thresholds[1],
        output_step=output_step(model),
    )
    monitor.inherit_totals(previous)
    return monitor


def jsonable(obj: Any) -> Any:
    """Plain JSON values (numpy scalars and arrays converted, NaN and inf to None)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj
