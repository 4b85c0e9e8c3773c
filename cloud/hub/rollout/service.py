"""The I/O shell around rollout.py: load, observe, advance, persist, publish.

A background ticker calls ``tick()`` about once a second; API actions call ``create`` and
``act``. Rows are locked (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite serialises
writers) so a ticker and a request never interleave on one rollout. Orders become
``edge.contract.Command``s published QoS 1 on ``edgekit/v1/<device>/cmd``, each naming its
device, with a fresh nonce and an expiry, signed with the hub's command key
(:mod:`cloud.hub.commands`) so agents can refuse forged, redirected and replayed ones.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.hub import commands
from cloud.hub.config import HubConfig
from cloud.hub.rollout.core.machine import (
    DeviceObservation,
    Order,
    RolloutState,
    act,
    advance,
    new_rollout,
)
from cloud.hub.rollout.core.spec import RolloutError, RolloutSpec
from cloud.hub.rollout.core.state import AuditRecord
from cloud.hub.rollout.store import ACTIVE, observe, save_state, to_state
from cloud.hub.storage import Database, ModelVersion, Rollout
from edge.contract import Command

log = logging.getLogger(__name__)
Publisher = Callable[[str, Command], None]
Signed = tuple[str, Command]  # (device, its signed command)


def advance_through(
    r: RolloutState, obs: dict[str, DeviceObservation], now: float
) -> tuple[RolloutState, list[Order]]:
    """``advance``, repeated while it moves on to the next wave: a wave that finishes in a
    tick orders its successor's devices in the same tick, not one tick later (at 3 waves and
    a 1 s tick that idle second per wave was a sixth of a 100-device rollout)."""
    wave = r.current_wave
    r, orders = advance(r, obs, now)
    for _ in range(len(r.waves)):
        if r.state != "running" or r.current_wave == wave:
            break
        wave = r.current_wave
        r, more = advance(r, obs, now)
        orders += more
    return r, orders


class RolloutService:
    def __init__(self, config: HubConfig, database: Database) -> None:
        self.config = config
        self.db = database
        self.publisher: Publisher | None = None
        self._lock = threading.Lock()
        self._key_ready = False
        self.ticks = 0

    def _ensure_command_key(self) -> None:
        """Create the command key (if this database has none yet) in a session of its own,
        before a rollout's transaction: creating it commits, which must not happen halfway
        through a locked rollout update."""
        if not self._key_ready:
            with self.db.session() as s:
                commands.command_key(s)
            self._key_ready = True

    # ------------------------------------------------------------------ commands
    def _command(
        self,
        s: Session,
        order: Order,
        now: float,
        key: Ed25519PrivateKey,
        models: dict[tuple[str, int], ModelVersion | None],
    ) -> Command:
        ref = (order.name, order.version)
        if ref not in models:
            models[ref] = s.scalar(
                select(ModelVersion).where(
                    ModelVersion.name == order.name, ModelVersion.version == order.version
                )
            )
        m = models[ref]
        base = (self.config.public_url or "http://127.0.0.1").rstrip("/")
        url = f"{base}/api/v1/models/{order.name}/{order.version}/bundle" if m else None
        cmd = Command(
            id=order.command_id,
            kind=order.kind,
            ts=now,
            device=order.device,
            nonce=commands.new_nonce(),
            name=order.name,
            version=order.version,
            url=url,
            sha256=m.sha256 if m else None,
            size=m.size if m else None,
            rollout=order.rollout,
            shadow=order.shadow if order.kind == "deploy" else None,
            expires=now + min(self.config.command_ttl_s, commands.MAX_TTL_S),
        )
        return commands.sign(s, cmd, key)

    def _sign(self, s: Session, orders: list[Order], now: float) -> list[Signed]:
        """The orders as signed commands, made in the transaction that records them; the
        key and each model row are read once per batch, not once per device."""
        if not orders:
            return []
        key = commands.command_key(s)
        models: dict[tuple[str, int], ModelVersion | None] = {}
        return [(o.device, self._command(s, o, now, key, models)) for o in orders]

    def _publish(self, commands: list[Signed]) -> None:
        """Send commands whose deployments are committed: a device answers within
        milliseconds and its bundle download is allowed only for a recorded deployment
        (model_routes._check_deployed), so publishing before the commit raced it (403)."""
        for device, cmd in commands:
            if self.publisher is None:
                log.warning("no MQTT bridge: %s for %s not sent", cmd.kind, device)
                continue
            try:
                self.publisher(device, cmd)
            except Exception:  # a dead broker must not lose the rollout's bookkeeping
                log.exception("publishing %s to %s failed", cmd.id, device)

    # ------------------------------------------------------------------ API side
    def create(
        self, body: Any, actor: str | None, notes: Sequence[tuple[str, str]] = ()
    ) -> RolloutState:
        """A new rollout (started unless ``"start": false``); ``notes`` are ``(action,
        reason)`` audit entries recorded with its creation (the champion check's verdict)."""
        spec = RolloutSpec.parse(body, default_timeout_s=self.config.deploy_timeout_s)
        start = body.get("start", True)
        if not isinstance(start, bool):
            raise RolloutError("'start' must be true or false")
        now = time.time()
        self._ensure_command_key()
        with self._lock:
            r, signed = self._create(spec, start, now, actor, notes)
            self._publish(signed)
        return r

    def _create(
        self,
        spec: RolloutSpec,
        start: bool,
        now: float,
        actor: str | None,
        notes: Sequence[tuple[str, str]],
    ) -> tuple[RolloutState, list[Signed]]:
        with self.db.session() as s:
            exists = s.scalar(
                select(ModelVersion.id).where(
                    ModelVersion.name == spec.model, ModelVersion.version == spec.version
                )
            )
            if exists is None:
                raise LookupError(f"model {spec.model} v{spec.version} is not registered")
            busy = s.scalar(
                select(Rollout.id).where(
                    Rollout.model_name == spec.model, Rollout.state.in_(("running", "paused"))
                )
            )
            if busy is not None and start:
                raise RolloutError(f"rollout {busy} of {spec.model} is still active", conflict=True)
            r = new_rollout(uuid.uuid4().hex[:12], spec, now, actor)
            r.audit += [AuditRecord(now, "draft", "draft", a, why, actor) for a, why in notes]
            orders: list[Order] = []
            if start:
                r, _ = act(r, "start", now, actor=actor)
                r, orders = advance_through(r, observe(s, r), now)
            save_state(s, r, created_by=actor)
            return r, self._sign(s, orders, now)

    def act(self, rid: str, action: str, actor: str | None) -> RolloutState:
        now = time.time()
        self._ensure_command_key()
        with self._lock:
            with self.db.session() as s:
                row = s.scalar(select(Rollout).where(Rollout.id == rid).with_for_update())
                if row is None:
                    raise LookupError(f"rollout {rid!r} does not exist")
                before = to_state(row)
                obs = observe(s, before)
                r, orders = act(before, action, now, actor=actor, observations=obs)
                if r.state == "running":
                    r, more = advance_through(r, obs, now)
                    orders += more
                save_state(s, r)
                signed = self._sign(s, orders, now)
            self._publish(signed)
        return r

    # ------------------------------------------------------------------ ticker side
    def tick(self, now: float | None = None) -> int:
        """Advance every active rollout once; returns how many orders went out."""
        now = time.time() if now is None else now
        sent = 0
        self._ensure_command_key()
        signed: list[Signed] = []
        with self._lock:
            with self.db.session() as s:
                ids = s.scalars(select(Rollout.id).where(Rollout.state.in_(ACTIVE))).all()
                for rid in ids:
                    row = s.scalar(select(Rollout).where(Rollout.id == rid).with_for_update())
                    if row is None or row.state not in ACTIVE:
                        continue
                    before = to_state(row)
                    r, orders = advance_through(before, observe(s, before), now)
                    if orders or r != before:
                        save_state(s, r)
                    signed += self._sign(s, orders, now)
            self._publish(signed)
            sent = len(signed)
        self.ticks += 1
        return sent


class Ticker:
    """Calls ``fn`` every ``interval`` seconds on a daemon thread until stopped."""

    def __init__(self, name: str, interval: float, fn: Callable[[], Any]) -> None:
        self.interval = interval
        self.fn = fn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Ticker:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.fn()
            except Exception:
                log.exception("%s failed; will retry", self._thread.name)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
