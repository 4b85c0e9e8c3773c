"""The edge agent: wires store, installer, server, reporter, outbox and transport together.

Threads: the transport's dispatcher (MQTT handlers: inference requests passed to
edge/agent/mqtt_inference.py's worker, commands queued), the inference watchdog and, during a
shadow run, the shadow thread (edge/serving/server.py; inferences run on their caller's thread), the
install thread (edge/install/installer.py), the outbox drainer, the telemetry timer
(edge/agent/reporting.py), and optionally the replay source and the loopback HTTP server.
In-process callers use :meth:`Agent.predict`.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np

from edge import contract as c
from edge.agent.commands import CommandGuard, CommandRefused, trusted_keys
from edge.agent.config import AgentConfig
from edge.agent.enrollment import load_credentials, mqtt_login
from edge.agent.mqtt_inference import MqttInference
from edge.agent.reporting import Reporter
from edge.bundle import ModelStore
from edge.capture import Capture
from edge.contract import Command, Status
from edge.errors import ConfigError
from edge.install import Installer
from edge.messaging import Outbox, Transport
from edge.runtime import Prediction
from edge.serving import LoadedModel, ModelServer, Monitor

if TYPE_CHECKING:
    from edge.agent.ha_discovery import HaDiscovery
    from edge.agent.http_api import LocalHttpApi
    from edge.agent.replay import ReplaySource

log = logging.getLogger("edgekit.agent")


def mqtt_transport(cfg: AgentConfig, credentials: dict[str, Any] | None = None) -> Transport:
    """The real MQTT transport for ``cfg`` (paho is imported only here); without a username
    in the config (or the broker URL) it logs in with the account enrollment stored."""
    from edge.messaging import MqttSettings, MqttTransport

    username, password = broker_login(cfg, credentials)
    settings = MqttSettings(
        url=cfg.broker,
        client_id=f"edgekit-agent-{cfg.device_id}",
        username=username,
        password=password,
        ca_file=str(cfg.ca_file) if cfg.ca_file else None,
        cert_file=str(cfg.cert_file) if cfg.cert_file else None,
        key_file=str(cfg.key_file) if cfg.key_file else None,
        protocol="5" if cfg.mqtt_version == "5" else "3.1.1",
        keepalive=cfg.keepalive,
    )
    return MqttTransport(settings.validate())


def broker_login(
    cfg: AgentConfig, credentials: dict[str, Any] | None
) -> tuple[str | None, str | None]:
    """The login set on top of the broker URLs: the config's, else (when neither the config
    nor any URL names a user) the account enrollment stored."""
    if cfg.username is not None or any(e.username is not None for e in cfg.brokers):
        return cfg.username, cfg.password
    return mqtt_login(None, cfg.password, credentials)


def anonymous_login(cfg: AgentConfig, credentials: dict[str, Any] | None) -> bool:
    """True when the agent would connect to its broker with no account at all: no username
    in the config or URLs, none from enrollment, and no client certificate."""
    if any(e.username is not None for e in cfg.brokers) or cfg.cert_file is not None:
        return False
    return broker_login(cfg, credentials)[0] is None


class Agent:
    """One device's agent. ``start()``, then serve until ``stop()``."""

    def __init__(self, cfg: AgentConfig, transport: Transport | None = None) -> None:
        self.cfg = cfg
        self.device = cfg.device_id
        self.boot = uuid.uuid4().hex[:12]
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self.credentials = load_credentials(cfg.data_dir)
        self.transport = (
            transport if transport is not None else mqtt_transport(cfg, self.credentials)
        )
        self.outbox = Outbox(cfg.data_dir / "outbox", cfg.outbox_max_bytes, cfg.outbox_max_messages)
        self.store = ModelStore(cfg.models_dir, cfg.keep_versions)
        # run-time settings (time limit, fallback thresholds) are applied by _configure()
        self.server = ModelServer(
            self, on_fallback=lambda model, rate: self.installer.request_fallback(model, rate)
        )
        self.reporter = Reporter(
            self.device,
            self.boot,
            self.transport,
            self.outbox,
            self.server,
            telemetry_interval=lambda: self.cfg.telemetry_interval,
            enrolled=self.credentials is not None,
        )
        self.capture = Capture(
            cfg.data_dir / "capture",
            cfg.capture,
            self.device,
            endpoint=self._capture_endpoint,
            drifting=lambda: (self.reporter.last_drift or {}).get("alert") is True,
        )
        self.reporter.capture_stats = self.capture.stats
        if cfg.capture.next:  # a local config's ``next``: the next N after every start
            self.capture.request(cfg.capture.next)
        self.installer = Installer(
            self.store,
            self.server,
            cfg.install_policy(self.credentials),
            self.reporter.emit,
            cfg.data_dir / "downloads",
            token=lambda: (self.credentials or {}).get("token"),
            on_change=self._model_changed,
        )
        self.inference = MqttInference(
            self.device,
            self.transport,
            self.server,
            self.predict,
            self.reporter.count_malformed,
            response_qos=cfg.infer_response_qos,
            max_pending=cfg.max_queued_requests,
        )
        self.commands = CommandGuard(
            self.device,
            trusted_keys(cfg.command_keys, (self.credentials or {}).get("command_key")),
            cfg.data_dir,
            allow_unsigned=cfg.allow_unsigned_commands,
        )
        self.replay: ReplaySource | None = None
        self.http: LocalHttpApi | None = None
        self.ha: HaDiscovery | None = None  # Home Assistant discovery (ha_discovery)
        self.started = False
        self._configure(cfg)

    # ------------------------------------------------------------------ lifecycle

    def start(self, *, connect: bool = True) -> None:
        """Recover, provision, connect and start every thread. Returns once serving."""
        from edge.runtime import describe_device

        if self.cfg.allow_unsigned_commands:
            log.warning(
                "allow_unsigned_commands is on: anyone who can publish to %s may command "
                "this device (development only)",
                c.topic(self.device, c.CMD),
            )
        elif not self.commands.keys:
            log.warning("no command key (enroll, or set command_keys): every command is refused")
        if connect and anonymous_login(self.cfg, self.credentials):
            log.warning(
                "connecting to broker %s anonymously: anyone who reaches it can read this "
                "device's commands and publish as it (enroll, or set username/password)",
                self.cfg.broker,
            )
        self.reporter.capabilities = describe_device()
        model = self.installer.recover()
        self.server.swap(model)
        self._model_changed()
        if self.cfg.bundle is not None:
            self.installer.provision(self.cfg.bundle)
        self.installer.start()
        if connect:
            self.transport.add_connect_listener(self.reporter.publish_status)
            self.transport.subscribe(c.topic(self.device, c.CMD), self._on_cmd, qos=1)
            self.inference.subscribe()
            if self.cfg.ha_discovery is not None:
                from edge.agent.ha_discovery import HaDiscovery

                self.ha = HaDiscovery(self.device, self.transport, self.cfg.ha_discovery)
                self.ha.attach()
            self.transport.connect(will=self.reporter.will())
            self.outbox.start(self.transport)
        self.reporter.start_telemetry()
        self.capture.start()
        if self.cfg.replay is not None:
            from edge.agent.replay import ReplaySource

            self.replay = ReplaySource(
                self.cfg.replay, self.cfg.replay_rate, loop=self.cfg.replay_loop
            )
            self.replay.start(self.predict)
        if self.cfg.http_port is not None:
            from edge.agent.http_api import LocalHttpApi

            self.http = LocalHttpApi(self, self.cfg.http_port)
            self.http.start()
        self.started = True
        log.info("agent %s started (boot %s)", self.device, self.boot)

    def stop(self, graceful: bool = True) -> None:
        """Publish offline, stop threads, flush the outbox."""
        if self.replay is not None:
            self.replay.stop()
        if self.http is not None:
            self.http.stop()
        self.installer.stop()
        self.reporter.stop_telemetry()
        self.transport.close(graceful=graceful, final=self.reporter.will())
        self.outbox.close()
        self.server.sampler = None
        self.capture.close()
        self.inference.close()
        self.server.close()
        current = self.server.current
        if current is not None:
            current.close()

    # ------------------------------------------------------------------ in-process API

    def predict(self, inputs: Any, label: Any = None) -> Prediction:
        """Predict one input (raw domain). Raises InputError or BackendError."""
        return self.server.predict(inputs, label)

    def predict_batch(self, inputs: list[Any], labels: list[Any] | None = None) -> list[Prediction]:
        """Predict several inputs in one runtime call (see ModelServer.predict_batch)."""
        return self.server.predict_batch(inputs, labels)

    def status(self) -> Status:
        return self.reporter.status()

    @property
    def monitor(self) -> Monitor:
        return self.reporter.monitor

    def emit(self, kind: str, step: str | None, message: str, **context: Any) -> None:
        """Queue one Event (see :meth:`Reporter.emit`)."""
        self.reporter.emit(kind, step, message, **context)

    def publish_status(self) -> None:
        self.reporter.publish_status()

    def publish_telemetry(self) -> None:
        self.reporter.publish_telemetry()

    # ------------------------------------------------------------------ Observer (serving)

    def on_input(self, x: np.ndarray) -> None:
        self.reporter.monitor.record_input(x)  # the one-sample batch as it is: no view made

    def on_prediction(
        self, model: LoadedModel, prediction: Prediction, latency_ms: float, label: Any
    ) -> None:
        self.reporter.monitor.record_scores(latency_ms, prediction.scores, prediction.index, label)

    def on_error(self, kind: str) -> None:
        self.reporter.monitor.record_error(kind)

    def on_rejection(self, code: str) -> None:
        self.reporter.monitor.record_rejection(code)

    def on_out_of_range(self, features: list[str]) -> None:
        self.reporter.monitor.record_out_of_range(features)

    def _capture_endpoint(self) -> tuple[str, str] | None:
        """Where samples go: the hub this device enrolled with, with its token (only)."""
        creds = self.credentials or {}
        hub, token = creds.get("hub"), creds.get("token")
        if isinstance(hub, str) and hub and isinstance(token, str) and token:
            return hub, token
        return None

    def _model_changed(self) -> None:
        self.reporter.model_changed(publish=self.started)

    # ------------------------------------------------------------------ commands

    def _on_cmd(self, _topic: str, payload: bytes) -> None:
        """Every command passes :class:`CommandGuard` first; a refused one only yields an
        event naming the reason (step None: a forged refusal never moves a rollout)."""
        try:
            cmd = self.commands.check(payload)
        except CommandRefused as exc:
            log.warning("command %s refused (%s): %s", exc.command_id, exc.reason, exc.message)
            self.emit(
                "error",
                None,
                f"command refused: {exc.message}",
                command=exc.command_id,
                detail={"reason": exc.reason, "message": exc.message},
            )
            return
        self.handle_command(cmd)

    def handle_command(self, cmd: Command) -> None:
        """Deploys and rollbacks go to the install thread; config and ping run now.
        ``cmd`` has passed :class:`CommandGuard` (signature, device, expiry, nonce)."""
        ctx: dict[str, Any] = {"command": cmd.id, "rollout": cmd.rollout, "version": cmd.version}
        if cmd.kind == "deploy":
            self.installer.submit(lambda: self.installer.deploy(cmd))
        elif cmd.kind == "rollback":
            self.installer.submit(lambda: self.installer.rollback(cmd))
        elif cmd.kind == "keys":  # bundle signing keys: in order with queued installs
            self.installer.submit(lambda: self.installer.apply_keys(cmd))
        elif cmd.kind == "config":
            self._apply_config(cmd, ctx)
        elif cmd.kind == "ping":
            self.publish_status()
            uptime = round(time.monotonic() - self.monitor.started, 3)
            self.emit("info", None, "pong", detail={"uptime_s": uptime}, **ctx)

    def _configure(self, cfg: AgentConfig) -> None:
        """Hand every component the settings it reads at run time: the one place config is
        applied, at start and by ``config`` commands, so an accepted key always takes effect.
        (The telemetry interval is read through a callable on each tick.)"""
        self.cfg = cfg
        self.server.configure(
            timeout=cfg.inference_timeout,
            fallback_error_rate=cfg.fallback_error_rate,
            fallback_window=cfg.fallback_window,
            fallback_min_inferences=cfg.fallback_min_inferences,
            input_guard=cfg.input_guard,
            input_guard_margin=cfg.input_guard_margin,
        )
        self.installer.policy = cfg.install_policy(self.credentials)
        self.inference.max_pending = cfg.max_queued_requests
        self.reporter.set_drift_thresholds(cfg.drift_threshold, cfg.drift_feature_threshold)
        if self.store.keep != cfg.keep_versions:
            self.store.keep = max(1, cfg.keep_versions)
            if self.started:
                self.store.prune()
        if self.replay is not None:
            self.replay.set_rate(cfg.replay_rate)
        self.capture.configure(cfg.capture)
        self.server.sampler = self.capture if cfg.capture.enabled else None  # off: no cost

    def _apply_config(self, cmd: Command, ctx: dict[str, Any]) -> None:
        try:
            cfg = self.cfg.replace_remote(cmd.config)
        except ConfigError as exc:
            self.emit("error", None, f"config refused: {exc}", detail={"reason": str(exc)}, **ctx)
            return
        self._configure(cfg)
        sent = cmd.config.get("capture")
        if isinstance(sent, dict) and "next" in sent:  # a one-shot request, not a setting
            self.capture.request(cfg.capture.next)
        self.emit("info", None, "config applied", detail={"config": cmd.config}, **ctx)
