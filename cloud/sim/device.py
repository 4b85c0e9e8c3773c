"""One simulated device: a real MQTT session speaking the real agent protocol.

A SimDevice owns a paho client but no network thread: the fleet's selector loop drives
many of them from one thread (see fleet.py), which is what lets a 2-core machine hold a
thousand sessions. Installs are the real flow: download over HTTP with the device token,
check the command's sha256, verify the signature against the trusted key, enforce the
version rule, run the golden set on a real runtime, activate, stay on probation, commit —
each step published as an ``edgekit.event/1``. Models are shared per process by bundle
sha256 (``ModelCache``) so a thousand devices do not load a thousand interpreters.

Given the hub's command key, a device checks every command like the agent does
(:class:`edge.agent.commands.CommandGuard`: signature, device, expiry, nonce; nonces kept in
memory) and answers a refused one with an error event naming the reason.
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from cloud.sim.bundles import BundleCache
from edge import __version__, contract
from edge.agent import CommandGuard, CommandRefused
from edge.bundle import check_version, entry_path, extract_bundle
from edge.contract import Command, Event, ModelRef, Status, Telemetry
from edge.errors import BundleError, EdgekitError, InstallError, SelfTestError
from edge.install import download, sha256_file
from edge.runtime.predictor import Predictor, golden_check, load_golden
from edge.serving import Monitor

log = logging.getLogger("edgekit.sim")

MAX_BUNDLE_BYTES = 64 * 1024 * 1024
DOWNLOAD_TIMEOUT_S = 120.0
Schedule = Callable[[float, Callable[[], None]], None]  # (delay s, callback)


@dataclass
class LoadedModel:
    """One extracted, verified bundle with a predictor and its golden set."""

    name: str
    version: int
    sha256: str
    predictor: Predictor
    golden: dict[str, np.ndarray]
    labels: list[str | None]
    reference: dict[str, Any] | None
    lock: threading.Lock

    @property
    def inputs(self) -> np.ndarray:
        return self.golden["inputs"]


class ModelCache:
    """Bundles extracted, verified and loaded once per process, keyed by their sha256.

    A later device that downloads a file with the same sha256 has, cryptographically, the
    same verified bundle; it still runs the golden set itself (``self_test``).
    """

    def __init__(self, root: Path, trusted_key: Path, runtime: str | None) -> None:
        self.root = root
        self.trusted_key = trusted_key
        self.runtime = runtime
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def load(self, bundle_file: Path, sha256: str) -> LoadedModel:
        with self._lock:
            if sha256 in self._models:
                return self._models[sha256]
            dest = self.root / sha256[:16]
            try:
                manifest = extract_bundle(bundle_file, dest, self.trusted_key)
            except BundleError as exc:
                raise InstallError("verifying", str(exc)) from exc
            predictor = Predictor.open(dest, manifest, runtime=self.runtime)
            golden = load_golden(dest, manifest)
            raw = golden.get("labels")
            labels: list[str | None] = (
                [manifest.labels[int(i)] for i in raw]
                if raw is not None and raw.dtype.kind in "iu"
                else [str(v) for v in raw]
                if raw is not None
                else [None] * len(golden["inputs"])
            )
            reference = None
            if manifest.reference is not None:
                reference = json.loads(entry_path(dest, manifest.reference).read_text())
            model = LoadedModel(
                name=manifest.name,
                version=manifest.version,
                sha256=sha256,
                predictor=predictor,
                golden=golden,
                labels=labels,
                reference=reference,
                lock=threading.Lock(),
            )
            self._models[sha256] = model
            return model


def self_test(model: LoadedModel) -> dict[str, float]:
    """The golden set through the real runtime (edge.runtime.predictor.golden_check)."""
    with model.lock:
        try:
            return golden_check(model.predictor, model.golden)
        except SelfTestError as exc:
            raise InstallError("self_test", str(exc)) from exc


class SimDevice:
    """A simulated agent. ``publish`` is the fleet's thread-safe publish function."""

    def __init__(
        self,
        device_id: str,
        client: Any,
        cache: ModelCache,
        token: str | None,
        *,
        probation_s: float = 2.0,
        inferences_per_tick: int = 5,
        tags: list[str] | None = None,
        command_keys: Mapping[str, Ed25519PublicKey] | None = None,
        bundles: BundleCache | None = None,
        schedule: Schedule | None = None,
    ) -> None:
        self.id = contract.check_device_id(device_id)
        # without keys, commands are taken as they come (the simulator measures the hub)
        self.guard = CommandGuard(self.id, command_keys, None) if command_keys else None
        self.client = client
        self.cache = cache
        self.token = token
        self.probation_s = probation_s
        self.inferences_per_tick = inferences_per_tick
        self.tags = tags or []
        self.boot = uuid.uuid4().hex[:12]
        self.seq = 0
        self.model: LoadedModel | None = None
        self.installed: dict[int, LoadedModel] = {}  # version -> model, for rollbacks
        self.monitor: Monitor | None = None
        self.idle = Monitor(["none"])  # what the heartbeat reports before any model
        self.started = time.time()
        # shared by the process: revalidated downloads (None: every device downloads)
        self.bundles = bundles
        # runs a callback after a delay on the fleet's loop, so a device on probation holds
        # no install thread (None: probation sleeps on the install thread)
        self.schedule = schedule
        self._install_lock = threading.Lock()  # guards _installing and _queued
        self._installing = False
        self._queued: list[Command] = []  # commands that arrived during an install
        self._run_async: Callable[..., Any] | None = None
        self._seq_lock = threading.Lock()
        self.rng = random.Random(device_id)

    # ----------------------------------------------------------------- publishing

    def next_seq(self) -> int:
        with self._seq_lock:
            self.seq += 1
            return self.seq

    def publish(self, kind: str, payload: dict[str, Any], *, qos: int = 1, retain: bool = False):  # type: ignore[no-untyped-def]
        return self.client.publish(
            contract.topic(self.id, kind), contract.encode_json(payload), qos=qos, retain=retain
        )

    def model_ref(self) -> ModelRef | None:
        m = self.model
        if m is None:
            return None
        art = m.predictor.artifact
        return ModelRef(m.name, m.version, art.runtime, art.precision)

    def status(self, state: str = "online") -> dict[str, Any]:
        return Status(
            device=self.id,
            ts=time.time(),
            seq=self.next_seq(),
            state=state,
            agent_version=f"{__version__}+sim",
            model=self.model_ref() if state == "online" else None,
            boot=self.boot,
            capabilities={"simulated": True, "tags": self.tags},
        ).to_dict()

    def will_payload(self) -> bytes:
        return contract.encode_json(self.status("offline"))

    def event(self, kind: str, message: str, cmd: Command | None = None, **kw: Any) -> None:
        ev = Event(
            device=self.id,
            ts=time.time(),
            seq=self.next_seq(),
            kind=kind,
            message=message,
            rollout=cmd.rollout if cmd else None,
            command=cmd.id if cmd else None,
            version=cmd.version if cmd else None,
            boot=self.boot,
            **kw,
        )
        self.publish(contract.EVENTS, ev.to_dict())

    # ----------------------------------------------------------------- behaviour

    def on_connect(self) -> None:
        self.client.subscribe(contract.topic(self.id, contract.CMD), qos=1)
        self.client.subscribe(contract.topic(self.id, contract.INFER_REQ), qos=0)
        self.publish(contract.STATUS, self.status(), retain=True)

    def tick(self) -> None:
        """Telemetry: run a few real inferences on the golden inputs, then report."""
        m, mon = self.model, self.monitor
        if m is None or mon is None:
            # no model yet: a heartbeat, as the agent sends one (model null), or the hub
            # marks the device offline after its staleness window
            self.publish(contract.TELEMETRY, self._telemetry(self.idle, None), qos=0)
            return
        for _ in range(self.inferences_per_tick):
            i = self.rng.randrange(len(m.inputs))
            x = m.inputs[i : i + 1]
            start = time.perf_counter()
            with m.lock:
                scores = m.predictor.infer_model_domain(x)[0]
            mon.record((time.perf_counter() - start) * 1000, scores, x[0], m.labels[i])
        self.publish(contract.TELEMETRY, self._telemetry(mon, self.model_ref()), qos=0)

    def _telemetry(self, mon: Monitor, model: ModelRef | None) -> dict[str, Any]:
        now = time.time()
        tel = Telemetry(
            device=self.id, ts=now, seq=self.next_seq(), model=model,
            metrics=mon.snapshot(), boot=self.boot,
        )  # fmt: skip
        return tel.to_dict()

    def on_message(self, topic: str, payload: bytes, run_async: Callable[..., Any]) -> None:
        kind = topic.rsplit("/", 2)[-1] if not topic.endswith(contract.INFER_REQ) else "infer"
        try:
            if kind != "infer" and self.guard is not None:
                cmd = self.guard.check(payload)
            else:
                obj = contract.decode_json(payload)
                if kind == "infer":
                    self._infer(obj)
                    return
                cmd = Command.parse(obj)
        except CommandRefused as exc:
            self._refused(exc)
            return
        except EdgekitError as exc:
            log.info("%s: dropped bad message on %s: %s", self.id, topic, exc)
            return
        if cmd.kind == "ping":
            self.event("info", "pong", cmd)
        elif cmd.kind in ("deploy", "rollback"):
            self._run_async = run_async
            run_async(self.install, cmd)

    def _refused(self, exc: CommandRefused) -> None:
        """The agent's answer to a refused command: one error event naming the reason."""
        log.info("%s: refused command %s: %s", self.id, exc.command_id, exc.message)
        detail = {"reason": exc.reason, "message": exc.message}
        self.publish(
            contract.EVENTS,
            Event(device=self.id, ts=time.time(), seq=self.next_seq(), kind="error",
                  message=f"command refused: {exc.message}", command=exc.command_id,
                  detail=detail, boot=self.boot).to_dict(),
        )  # fmt: skip

    def _infer(self, obj: dict[str, Any]) -> None:
        from edge.contract import InferRequest, InferResponse

        req = InferRequest.parse(obj)
        m = self.model
        if m is None:
            res = InferResponse(
                req.id, self.id, time.time(), error={"code": "no_model", "message": "no model"}
            )
        else:
            try:
                with m.lock:
                    pred = m.predictor.predict(req.inputs)
                res = InferResponse(
                    req.id,
                    self.id,
                    time.time(),
                    label=pred.label,
                    scores=pred.scores,
                    version=m.version,
                    latency_ms=pred.latency_ms,
                )
            except EdgekitError as exc:
                code = getattr(exc, "code", "error")
                res = InferResponse(
                    req.id, self.id, time.time(), error={"code": code, "message": str(exc)}
                )
        self.publish(contract.INFER_RES, res.to_dict(), qos=0)

    def install(self, cmd: Command) -> None:
        """The real deploy flow, one event per step; never leaves a half-installed model.
        One install at a time, as on an agent: a command that arrives meanwhile waits."""
        with self._install_lock:
            if self._installing:
                self._queued.append(cmd)
                return
            self._installing = True
        self._install(cmd)

    def _install(self, cmd: Command) -> None:
        kind = "rollback" if cmd.kind == "rollback" else "deploy"
        try:
            if cmd.expires is not None and cmd.expires < time.time():
                raise InstallError(
                    "verifying", f"command expired {time.time() - cmd.expires:.0f} s ago"
                )
            model = self.installed.get(cmd.version or -1) if kind == "rollback" else None
            if model is None:
                model = self._fetch(cmd, kind)
            self.event(kind, "activating", cmd, step="activating")
            previous = self.model
            self._activate(model)
            self.publish(contract.STATUS, self.status(), retain=True)
            self.event(kind, "probation", cmd, step="probation")
        except EdgekitError as exc:
            self._failed(kind, cmd, exc)
            self._next()
            return
        if self.schedule is None:
            time.sleep(self.probation_s)
            self._commit(kind, cmd, model, previous)
        else:
            self.schedule(self.probation_s, lambda: self._commit(kind, cmd, model, previous))

    def _failed(self, kind: str, cmd: Command, exc: EdgekitError) -> None:
        step = getattr(exc, "step", "failed")
        detail = {"reason": str(exc), "at": step}
        self.event(kind, f"{step}: {exc}", cmd, step="failed", detail=detail)

    def _commit(
        self, kind: str, cmd: Command, model: LoadedModel, previous: LoadedModel | None
    ) -> None:
        """Probation is over: committed, and the next queued command (if any) starts."""
        try:
            self.event(kind, "committed", cmd, step="committed")
            self.installed[model.version] = model
            if previous is not None:
                self.installed.setdefault(previous.version, previous)
        finally:
            self._next()

    def _next(self) -> None:
        with self._install_lock:
            cmd = self._queued.pop(0) if self._queued else None
            self._installing = cmd is not None
        if cmd is None:
            return
        if self._run_async is not None:
            self._run_async(self._install, cmd)
        else:
            self._install(cmd)

    def _fetch(self, cmd: Command, kind: str) -> LoadedModel:
        if cmd.url is None or cmd.sha256 is None:
            raise InstallError("downloading", "command names no bundle url/sha256")
        self.event(kind, "downloading", cmd, step="downloading")
        if self.bundles is not None:
            got = self.bundles.fetch(
                cmd.url,
                token=self.token,
                size=cmd.size,
                max_bytes=MAX_BUNDLE_BYTES,
                timeout=DOWNLOAD_TIMEOUT_S,
            )
            model = self._verify(kind, cmd, got.path, got.sha256)
        else:
            with tempfile.TemporaryDirectory(prefix="edgekit-sim-") as tmp:
                path = download(
                    cmd.url,
                    Path(tmp) / "bundle.ekb",
                    max_bytes=MAX_BUNDLE_BYTES,
                    timeout=DOWNLOAD_TIMEOUT_S,
                    token=self.token,
                    expected_size=cmd.size,
                )
                model = self._verify(kind, cmd, path, sha256_file(path))
        if model.version != cmd.version:
            raise InstallError(
                "verifying", f"bundle is version {model.version}, command says {cmd.version}"
            )
        installed = self.model.version if self.model else None
        try:
            check_version(model.version, installed, rollback=kind == "rollback")
        except BundleError as exc:
            raise InstallError("verifying", str(exc)) from exc
        self.event(kind, "self_test", cmd, step="self_test", detail=self_test(model))
        return model

    def _verify(self, kind: str, cmd: Command, path: Path, digest: str) -> LoadedModel:
        self.event(kind, "verifying", cmd, step="verifying")
        if digest != (cmd.sha256 or "").lower():
            raise InstallError("verifying", f"sha256 mismatch: file is {digest[:12]}…")
        return self.cache.load(path, digest)

    def _activate(self, model: LoadedModel) -> None:
        self.model = model
        self.monitor = Monitor(model.predictor.manifest.labels, model.reference)
