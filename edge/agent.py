"""The edge agent: wires store, installer, server, monitor, outbox and transport together.

Threads: the transport's dispatcher (MQTT handlers: inference requests answered inline,
commands queued), the inference thread (edge/serving.py), the install thread
(edge/installer.py), the outbox drainer, the telemetry timer, and optionally the replay
source and the loopback HTTP server. In-process callers use :meth:`Agent.predict`.

Every published payload carries ``schema``, ``device``, ``ts``, ``boot`` and ``seq``;
``seq`` counts per topic (status, telemetry, events) from 0 at every start, so a consumer
that sees a gap in one device's telemetry ``seq`` within one ``boot`` knows it lost one.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge import __version__
from edge import contract as c
from edge.config import RUNTIME_KEYS, AgentConfig
from edge.contract import Command, Event, InferRequest, InferResponse, Status, Telemetry
from edge.enroll import load_credentials
from edge.errors import BackendError, ConfigError, ContractError, EdgekitError, InputError
from edge.installer import Installer
from edge.monitor import Monitor
from edge.outbox import Outbox
from edge.predictor import Prediction
from edge.serving import InferenceTimeoutError, LoadedModel, ModelServer, NoModelError
from edge.store import ModelStore
from edge.transport_api import Transport, Will
from edge.updater import Policy

if TYPE_CHECKING:
    from edge.http_api import LocalHttpApi
    from edge.replay import ReplaySource

log = logging.getLogger("edgekit.agent")

MAX_REMEMBERED_COMMANDS = 256


def mqtt_transport(cfg: AgentConfig) -> Transport:
    """The real MQTT transport for ``cfg`` (paho is imported only here)."""
    from edge.transport import MqttSettings, MqttTransport

    settings = MqttSettings(
        url=cfg.broker,
        client_id=f"edgekit-agent-{cfg.device_id}",
        username=cfg.username,
        password=cfg.password,
        ca_file=str(cfg.ca_file) if cfg.ca_file else None,
        cert_file=str(cfg.cert_file) if cfg.cert_file else None,
        key_file=str(cfg.key_file) if cfg.key_file else None,
        protocol="5" if cfg.mqtt_version == "5" else "3.1.1",
        keepalive=cfg.keepalive,
    )
    return MqttTransport(settings.validate())


class Agent:
    """One device's agent. ``start()``, then serve until ``stop()``."""

    def __init__(self, cfg: AgentConfig, transport: Transport | None = None) -> None:
        self.cfg = cfg
        self.device = cfg.device_id
        self.boot = uuid.uuid4().hex[:12]
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.credentials = load_credentials(cfg.data_dir)
        self.transport = transport if transport is not None else mqtt_transport(cfg)
        self.outbox = Outbox(cfg.data_dir / "outbox", cfg.outbox_max_bytes, cfg.outbox_max_messages)
        self.store = ModelStore(cfg.models_dir, cfg.keep_versions)
        self.server = ModelServer(
            self,
            timeout=cfg.inference_timeout,
            fallback_error_rate=cfg.fallback_error_rate,
            fallback_window=cfg.fallback_window,
            fallback_min_inferences=cfg.fallback_min_inferences,
            on_fallback=lambda model, rate: self.installer.request_fallback(model, rate),
        )
        self.installer = Installer(
            self.store,
            self.server,
            Policy.from_config(cfg),
            self.emit,
            cfg.data_dir / "downloads",
            token=lambda: (self.credentials or {}).get("token"),
            on_change=self._model_changed,
        )
        self.monitor = Monitor(["none"])
        self._monitor_model: LoadedModel | None = None
        self._seq = {c.STATUS: 0, c.TELEMETRY: 0, c.EVENTS: 0}
        self._seq_lock = threading.Lock()
        self._commands: OrderedDict[str, float] = OrderedDict()
        self._malformed = 0
        self._oversize_seen = 0
        self._stop = threading.Event()
        self._telemetry_thread: threading.Thread | None = None
        self.capabilities: dict[str, Any] = {}
        self.replay: ReplaySource | None = None
        self.http: LocalHttpApi | None = None
        self.started = False

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, connect: bool = True) -> None:
        """Recover, provision, connect and start every thread. Returns once serving."""
        from edge.device import describe_device

        self.capabilities = describe_device()
        model = self.installer.recover()
        self.server.swap(model)
        self._model_changed()
        if self.cfg.bundle is not None:
            self.installer.provision(self.cfg.bundle)
        self.installer.start()
        if connect:
            self.transport.add_connect_listener(self.publish_status)
            self.transport.subscribe(c.topic(self.device, c.CMD), self._on_cmd, qos=1)
            self.transport.subscribe(c.topic(self.device, c.INFER_REQ), self._on_infer, qos=1)
            self.transport.connect(will=self._status_will())
            self.outbox.start(self.transport)
        self._telemetry_thread = threading.Thread(
            target=self._telemetry_loop, name="telemetry", daemon=True
        )
        self._telemetry_thread.start()
        if self.cfg.replay is not None:
            from edge.replay import ReplaySource

            self.replay = ReplaySource(
                self.cfg.replay, self.cfg.replay_rate, loop=self.cfg.replay_loop
            )
            self.replay.start(self.predict)
        if self.cfg.http_port is not None:
            from edge.http_api import LocalHttpApi

            self.http = LocalHttpApi(self, self.cfg.http_port)
            self.http.start()
        self.started = True
        log.info("agent %s started (boot %s)", self.device, self.boot)

    def stop(self, graceful: bool = True) -> None:
        """Publish offline, stop threads, flush the outbox."""
        self._stop.set()
        if self.replay is not None:
            self.replay.stop()
        if self.http is not None:
            self.http.stop()
        self.installer.stop()
        if self._telemetry_thread is not None:
            self._telemetry_thread.join(timeout=5)
        self.transport.close(graceful=graceful, final=self._status_will())
        self.outbox.close()
        self.server.close()
        current = self.server.current
        if current is not None:
            current.close()

    # ------------------------------------------------------------------ in-process API

    def predict(self, inputs: Any, label: Any = None) -> Prediction:
        """Predict one input (raw domain). Raises InputError or BackendError."""
        return self.server.predict(inputs, label)

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
            enrolled=self.credentials is not None,
            capabilities=self.capabilities,
        )

    # ------------------------------------------------------------------ Observer (serving)

    def on_prediction(
        self, model: LoadedModel, x: np.ndarray, scores: np.ndarray, latency_ms: float, label: Any
    ) -> None:
        self.monitor.record(latency_ms, scores[0], x[0], label)

    def on_error(self, kind: str) -> None:
        self.monitor.record_error(kind)

    def on_rejection(self, code: str) -> None:
        self.monitor.record_rejection(code)

    # ------------------------------------------------------------------ publishing

    def _next_seq(self, kind: str) -> int:
        with self._seq_lock:
            self._seq[kind] += 1
            return self._seq[kind] - 1

    def _status_will(self) -> Will:
        offline = Status(self.device, time.time(), -1, "offline", __version__, boot=self.boot)
        return Will(c.topic(self.device, c.STATUS), c.encode_json(offline.to_dict()), 1, True)

    def publish_status(self) -> None:
        """Retained ``online`` status; re-sent on every (re)connect and model change."""
        payload = c.encode_json(self.status().to_dict())
        self.transport.publish(c.topic(self.device, c.STATUS), payload, qos=1, retain=True)

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
            detail=_jsonable(detail or {}),
            boot=self.boot,
        )
        log.info("event %s/%s: %s", kind, step, message)
        try:
            self.outbox.put(c.topic(self.device, c.EVENTS), c.encode_json(event.to_dict()))
        except (EdgekitError, ValueError) as exc:
            log.error("event not queued: %s", exc)

    def publish_telemetry(self) -> None:
        """One telemetry message from the monitor's current interval, through the outbox."""
        metrics = self.monitor.snapshot(outbox=self.outbox.stats())
        oversize = self.transport.stats.get("dropped_oversize", 0)
        extra = {"malformed": self._take_malformed(), "oversize": oversize - self._oversize_seen}
        self._oversize_seen = oversize
        rejected = metrics.setdefault("rejected_inputs", {})
        rejected.update({k: v for k, v in extra.items() if v})
        model = self.server.current
        telemetry = Telemetry(
            device=self.device,
            ts=time.time(),
            seq=self._next_seq(c.TELEMETRY),
            model=model.ref() if model else None,
            metrics=_jsonable(metrics),
            boot=self.boot,
        )
        self.outbox.put(c.topic(self.device, c.TELEMETRY), c.encode_json(telemetry.to_dict()))

    def _take_malformed(self) -> int:
        with self._seq_lock:
            n, self._malformed = self._malformed, 0
        return n

    def _telemetry_loop(self) -> None:
        while not self._stop.wait(self.cfg.telemetry_interval):
            try:
                self.publish_telemetry()
            except Exception:
                log.exception("telemetry failed")

    def _model_changed(self) -> None:
        """A new model is served: fresh drift reference and labels, new status."""
        model = self.server.current
        if model is not None and model is not self._monitor_model:
            try:
                self.monitor = _monitor_for(model, self.monitor)
            except Exception as exc:  # a bad reference must not stop serving
                log.error("monitor for %s: %s", model.slot.id, exc)
            self._monitor_model = model
        if self.started and self.transport.connected:
            self.publish_status()

    # ------------------------------------------------------------------ MQTT handlers

    def _count_malformed(self, why: str) -> None:
        with self._seq_lock:
            self._malformed += 1
        log.warning("malformed inference request dropped: %s", why)

    def _on_infer(self, _topic: str, payload: bytes) -> None:
        try:
            obj = c.decode_json(payload)
        except ContractError as exc:
            self._count_malformed(str(exc))
            return
        try:
            req = InferRequest.parse(obj)
        except ContractError as exc:
            rid = obj.get("id")
            if isinstance(rid, (str, int)) and not isinstance(rid, bool) and rid != "":
                self._reply(
                    InferResponse(
                        str(rid),
                        self.device,
                        time.time(),
                        error={"code": "bad_request", "message": str(exc)},
                    )
                )
            else:
                self._count_malformed(str(exc))
            return
        self._reply(self.answer(req))

    def answer(self, req: InferRequest) -> InferResponse:
        """The response to one request: a prediction or an error object, never an exception."""
        model = self.server.current
        try:
            pred = self.predict(req.inputs, req.label)
        except EdgekitError as exc:
            return InferResponse(
                req.id,
                self.device,
                time.time(),
                error={"code": _error_code(exc), "message": str(exc)},
            )
        return InferResponse(
            id=req.id,
            device=self.device,
            ts=time.time(),
            label=pred.label,
            scores=pred.scores,
            version=model.version if model else None,
            latency_ms=pred.latency_ms,
        )

    def _reply(self, res: InferResponse) -> None:
        try:
            payload = c.encode_json(res.to_dict())
            self.transport.publish(c.topic(self.device, c.INFER_RES), payload, qos=1)
        except (EdgekitError, ValueError) as exc:
            log.error("cannot send inference response %s: %s", res.id, exc)

    def _on_cmd(self, _topic: str, payload: bytes) -> None:
        try:
            cmd = Command.parse(c.decode_json(payload))
        except ContractError as exc:
            self.emit("error", None, f"bad command: {exc}", detail={"reason": str(exc)})
            return
        if cmd.id in self._commands:
            log.info("command %s seen before; ignored", cmd.id)
            return
        self._commands[cmd.id] = time.time()
        while len(self._commands) > MAX_REMEMBERED_COMMANDS:
            self._commands.popitem(last=False)
        self.handle_command(cmd)

    def handle_command(self, cmd: Command) -> None:
        """Deploys and rollbacks go to the install thread; config and ping run now."""
        ctx: dict[str, Any] = {"command": cmd.id, "rollout": cmd.rollout, "version": cmd.version}
        if cmd.kind == "deploy":
            self.installer.submit(lambda: self.installer.deploy(cmd))
        elif cmd.kind == "rollback":
            self.installer.submit(lambda: self.installer.rollback(cmd))
        elif cmd.expires is not None and cmd.expires < time.time():
            self.emit(
                "error", None, f"{cmd.kind} command expired", detail={"reason": "expired"}, **ctx
            )
        elif cmd.kind == "config":
            self._apply_config(cmd, ctx)
        elif cmd.kind == "ping":
            self.publish_status()
            uptime = round(time.monotonic() - self.monitor.started, 3)
            self.emit("info", None, "pong", detail={"uptime_s": uptime}, **ctx)

    def _apply_config(self, cmd: Command, ctx: dict[str, Any]) -> None:
        bad = sorted(set(cmd.config) - RUNTIME_KEYS)
        try:
            if bad:
                raise ConfigError(f"keys {', '.join(bad)} cannot be changed remotely")
            self.cfg = self.cfg.replace(**cmd.config)
        except ConfigError as exc:
            self.emit("error", None, f"config refused: {exc}", detail={"reason": str(exc)}, **ctx)
            return
        self.server.configure(
            timeout=self.cfg.inference_timeout,
            fallback_error_rate=self.cfg.fallback_error_rate,
            fallback_window=self.cfg.fallback_window,
            fallback_min_inferences=self.cfg.fallback_min_inferences,
        )
        self.installer.policy = Policy.from_config(self.cfg)
        self.emit("info", None, "config applied", detail={"config": cmd.config}, **ctx)


def _monitor_for(model: LoadedModel, previous: Monitor) -> Monitor:
    import json

    from edge.bundle import entry_path

    reference = None
    if model.manifest.reference is not None:
        path: Path = entry_path(model.slot.bundle_dir, model.manifest.reference)
        reference = json.loads(path.read_bytes())
    monitor = Monitor(list(model.manifest.labels), reference)
    monitor.started = previous.started
    monitor.inferences_total = previous.inferences_total
    monitor.errors_total = previous.errors_total
    return monitor


def _error_code(exc: EdgekitError) -> str:
    if isinstance(exc, InputError):
        return exc.code
    if isinstance(exc, NoModelError):
        return "no_model"
    if isinstance(exc, InferenceTimeoutError):
        return "timeout"
    if isinstance(exc, BackendError):
        return "runtime"
    return "error"


def _jsonable(obj: Any) -> Any:
    """Plain JSON values (numpy scalars and arrays converted, NaN and inf to None)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, Path):
        return str(obj)
    return obj
