"""The rollout state machine: pure functions, no I/O, no database, no clock.

``advance(rollout, observations, now) -> (rollout, orders)`` moves a rollout forward from
what devices REPORT (the model version they run, the deploy steps they announce, their
KPIs); ``act(rollout, action, now, ...)`` applies an operator action. Both return a new
``RolloutState`` and the deploy/rollback ``Order``s the I/O shell turns into MQTT commands.

States: draft -> running <-> paused -> completed | aborted | rolled_back.
Deployment statuses: pending (ordered, no answer yet), committed, current (already ran the
version), skipped (runs a newer version), failed, retry (queued again), reverting, reverted,
stranded (nothing to roll back to).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cloud.hub.rollout_spec import Gate, RolloutError, RolloutSpec, Wave

STATES = ("draft", "running", "paused", "completed", "aborted", "rolled_back")
TERMINAL = ("completed", "aborted", "rolled_back")
ACTIONS = ("start", "pause", "resume", "abort", "rollback", "retry", "approve")
FAIL_STEPS = ("failed", "rolled_back")
_OK = ("committed", "current")

__all__ = [
    "ACTIONS",
    "STATES",
    "AuditRecord",
    "DeploymentState",
    "DeviceObservation",
    "Kpis",
    "Order",
    "RolloutError",
    "RolloutSpec",
    "RolloutState",
    "StepReport",
    "WaveState",
    "act",
    "advance",
    "new_rollout",
    "wave_progress",
]


@dataclass(frozen=True)
class Kpis:
    """A device's latest KPIs and the model version they were measured on."""

    model: str
    version: int
    error_rate: float | None = None
    p95_latency_ms: float | None = None
    drift: float | None = None
    accuracy: float | None = None

    def get(self, metric: str) -> float | None:
        value: float | None = getattr(self, metric)
        return value


@dataclass(frozen=True)
class StepReport:
    """The latest deploy/rollback step a device announced for this rollout."""

    step: str
    command: str | None = None
    version: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class DeviceObservation:
    id: str
    online: bool
    tags: tuple[str, ...] = ()
    model: tuple[str, int] | None = None  # (name, version) the device reports it runs
    kpis: Kpis | None = None
    step: StepReport | None = None


@dataclass(frozen=True)
class Order:
    device: str
    kind: str  # deploy | rollback
    name: str
    version: int
    command_id: str
    rollout: str


@dataclass
class DeploymentState:
    device: str
    wave: int
    status: str
    updated_by_rollout: bool = False
    from_name: str | None = None
    from_version: int | None = None
    command_id: str | None = None
    attempts: int = 0
    ordered_at: float | None = None
    updated: float = 0.0
    reason: str = ""


@dataclass
class WaveState:
    index: int
    wave: Wave
    started: float | None = None
    soak_started: float | None = None
    finished: float | None = None
    approved: bool = False


@dataclass(frozen=True)
class AuditRecord:
    ts: float
    from_state: str
    to_state: str
    action: str
    reason: str
    actor: str | None = None


@dataclass
class RolloutState:
    id: str
    spec: RolloutSpec
    state: str = "draft"
    current_wave: int = 0
    waves: list[WaveState] = field(default_factory=list)
    deployments: dict[str, DeploymentState] = field(default_factory=dict)
    audit: list[AuditRecord] = field(default_factory=list)
    baseline: dict[str, Any] = field(default_factory=dict)
    gates: list[dict[str, Any]] = field(default_factory=list)
    created: float = 0.0
    updated: float = 0.0
    command_seq: int = 0

    @property
    def waiting_for(self) -> str | None:
        if self.state != "running" or self.current_wave >= len(self.waves):
            return None
        w = self.waves[self.current_wave]
        if w.soak_started is None:
            return "devices"
        if self.spec.manual_approval and w.finished is None and _soaked(self, w, None):
            return "approval"
        return "soak"


def new_rollout(rid: str, spec: RolloutSpec, now: float, actor: str | None = None) -> RolloutState:
    r = RolloutState(id=rid, spec=spec, created=now, updated=now)
    r.waves = [WaveState(i, w) for i, w in enumerate(spec.waves)]
    r.audit.append(AuditRecord(now, "draft", "draft", "create", "rollout created", actor))
    return r


# --------------------------------------------------------------------------- helpers


def _transition(
    r: RolloutState, to: str, action: str, reason: str, now: float, actor: str | None
) -> None:
    r.audit.append(AuditRecord(now, r.state, to, action, reason, actor))
    r.state = to
    r.updated = now


def _next_command(r: RolloutState) -> str:
    r.command_seq += 1
    return f"{r.id}-{r.command_seq}"


def _wave_members(r: RolloutState, index: int) -> list[DeploymentState]:
    return [d for d in r.deployments.values() if d.wave == index and d.status != "skipped"]


def _soaked(r: RolloutState, w: WaveState, now: float | None) -> bool:
    if w.soak_started is None:
        return False
    return now is None or now - w.soak_started >= r.spec.soak_seconds


def wave_progress(r: RolloutState, n_target: int | None = None) -> list[dict[str, Any]]:
    """Per-wave counts for the API and web page."""
    out = []
    for w in r.waves:
        members = [d for d in r.deployments.values() if d.wave == w.index]
        counts: dict[str, int] = {}
        for d in members:
            counts[d.status] = counts.get(d.status, 0) + 1
        out.append(
            {
                "index": w.index,
                "wave": w.wave.to_json(),
                "size": w.wave.cumulative(n_target) if n_target is not None else None,
                "devices": len(members),
                "committed": counts.get("committed", 0) + counts.get("current", 0),
                "pending": counts.get("pending", 0) + counts.get("retry", 0),
                "failed": counts.get("failed", 0),
                "counts": counts,
                "started": w.started,
                "soak_started": w.soak_started,
                "finished": w.finished,
                "approved": w.approved,
            }
        )
    return out


# --------------------------------------------------------------------------- observing


def _observe(r: RolloutState, obs: Mapping[str, DeviceObservation], now: float) -> None:
    """Fold what devices report into deployment statuses (never assume success)."""
    target = (r.spec.model, r.spec.version)
    for d in r.deployments.values():
        o = obs.get(d.device)
        if o is None:
            continue
        step = o.step
        answers = step is not None and (
            step.command == d.command_id or (step.command is None and step.version is not None)
        )
        if d.status == "pending":
            if (
                answers
                and step is not None
                and step.step in FAIL_STEPS
                and step.command == d.command_id
            ):
                _set(d, "failed", now, f"device reported {step.step}: {step.reason}".rstrip(": "))
            elif answers and step is not None and step.step == "committed" and o.model == target:
                _set(d, "committed", now, "device committed and reports the version")
            elif d.ordered_at is not None and now - d.ordered_at > r.spec.deploy_timeout_s:
                _set(d, "failed", now, f"no commit within {r.spec.deploy_timeout_s:g} s")
        elif (
            d.status in _OK
            and o.model is not None
            and o.model != target
            and r.state != "rolled_back"
        ):
            _set(d, "failed", now, f"device now reports {o.model[0]} v{o.model[1]}")
        elif d.status == "reverting":
            if o.model == (d.from_name, d.from_version):
                _set(d, "reverted", now, "device reports the previous version")
            elif step is not None and step.command == d.command_id and step.step == "failed":
                _set(d, "failed", now, f"rollback failed: {step.reason}".rstrip(": "))


def _set(d: DeploymentState, status: str, now: float, reason: str) -> None:
    d.status, d.updated, d.reason = status, now, reason


def _capture_baseline(r: RolloutState, obs: Mapping[str, DeviceObservation]) -> None:
    """KPIs of target devices that still run another version of the same model."""
    values: dict[str, list[float]] = {g.metric: [] for g in r.spec.gates}
    n = 0
    for o in obs.values():
        k = o.kpis
        if k is None or k.model != r.spec.model or k.version == r.spec.version:
            continue
        if not r.spec.targets(o.id, o.tags):
            continue
        n += 1
        for metric, vals in values.items():
            v = k.get(metric)
            if v is not None:
                vals.append(v)
    if n:
        r.baseline = {m: (sum(v) / len(v) if v else None) for m, v in values.items()}
        r.baseline["devices"] = n


def _evaluate_gates(r: RolloutState, obs: Mapping[str, DeviceObservation]) -> str | None:
    """Record every gate's value vs its limit; return a failure reason or None."""
    results, failure = [], None
    members = [d for d in r.deployments.values() if d.status in _OK]
    for gate in r.spec.gates:
        vals = []
        for d in members:
            o = obs.get(d.device)
            k = o.kpis if o is not None else None
            if k is not None and (k.model, k.version) == (r.spec.model, r.spec.version):
                v = k.get(gate.metric)
                if v is not None:
                    vals.append(v)
        cand = sum(vals) / len(vals) if vals else None
        base = r.baseline.get(gate.metric)
        ok: bool | None = None
        limit = gate.limit(base) if base is not None else None
        if cand is not None and base is not None and len(vals) >= r.spec.gate_min_devices:
            ok = gate.passes(cand, base)
            if not ok and failure is None:
                failure = _gate_reason(gate, cand, base)
        results.append(
            {
                "metric": gate.metric,
                "value": cand,
                "baseline": base,
                "threshold": limit,
                "tolerance": gate.tolerance,
                "mode": gate.mode,
                "devices": len(vals),
                "ok": ok,
            }
        )
    r.gates = results
    return failure


def _gate_reason(gate: Gate, cand: float, base: float) -> str:
    op = "<" if gate.mode == "min_abs" else ">"
    return (
        f"health gate {gate.metric}: {cand:.4g} {op} limit {gate.limit(base):.4g} "
        f"(previous version {base:.4g}, tolerance {gate.tolerance:g})"
    )


# --------------------------------------------------------------------------- advancing


def advance(
    rollout: RolloutState, observations: Mapping[str, DeviceObservation], now: float
) -> tuple[RolloutState, list[Order]]:
    """One tick: fold reports in, check thresholds and gates, order the next devices."""
    r = copy.deepcopy(rollout)
    if r.state in ("running", "paused", "rolled_back"):
        _observe(r, observations, now)
    if r.state != "running":
        return r, []
    _capture_baseline(r, observations)
    orders: list[Order] = []
    w = r.waves[r.current_wave]
    if w.started is None:
        w.started = now
    members = _wave_members(r, r.current_wave)
    size = len(members)
    failed = sum(d.status == "failed" for d in members)
    if size and failed / size > r.spec.error_threshold:
        reason = (
            f"wave {r.current_wave + 1}: {failed}/{size} devices failed, more than the "
            f"error threshold {r.spec.error_threshold:g}"
        )
        return _on_error(r, reason, now, orders, observations)
    gate_failure = _evaluate_gates(r, observations)
    if gate_failure is not None:
        return _on_error(r, gate_failure, now, orders, observations)
    # Only now order more devices: a rollout that must stop never sends new deploys.
    target = sorted(
        (o for o in observations.values() if r.spec.targets(o.id, o.tags)),
        key=lambda o: (not o.online, o.id),
    )
    desired = w.wave.cumulative(len(target))
    for o in target:
        if len(r.deployments) >= desired:
            break
        if o.id not in r.deployments:
            orders.extend(_assign(r, o, now))
    for d in r.deployments.values():
        if d.status == "retry":
            orders.append(_order_deploy(r, d, now))

    members = _wave_members(r, r.current_wave)
    size = len(members)
    committed = sum(d.status in _OK for d in members)
    covered = sum(d.wave <= r.current_wave for d in r.deployments.values())
    complete = desired > 0 and covered >= desired
    share = committed / size if size else 1.0
    if not (complete and share >= r.spec.success_threshold):
        w.soak_started = None  # success lost (e.g. devices joined): the soak starts over
    elif w.soak_started is None:
        w.soak_started = now
    if not _soaked(r, w, now):
        return r, orders
    last = r.current_wave == len(r.waves) - 1
    if not last and r.spec.manual_approval and not w.approved:
        return r, orders
    if last:
        if any(d.status in ("pending", "retry") for d in r.deployments.values()):
            return r, orders
        w.finished = now
        _transition(r, "completed", "complete", f"all {len(r.waves)} waves done", now, None)
        return r, orders
    w.finished = now
    r.current_wave += 1
    r.waves[r.current_wave].started = now
    r.audit.append(
        AuditRecord(
            now, "running", "running", "next_wave",
            f"wave {r.current_wave} done ({committed}/{size} committed); starting wave "
            f"{r.current_wave + 1}",
        )
    )  # fmt: skip
    return r, orders


def _assign(r: RolloutState, o: DeviceObservation, now: float) -> list[Order]:
    name, version = r.spec.model, r.spec.version
    d = DeploymentState(device=o.id, wave=r.current_wave, status="pending", updated=now)
    if o.model is not None:
        d.from_name, d.from_version = o.model
    r.deployments[o.id] = d
    if o.model == (name, version):
        _set(d, "current", now, "already runs this version")
        return []
    if o.model is not None and o.model[0] == name and o.model[1] > version:
        _set(d, "skipped", now, f"runs newer version {o.model[1]}")
        return []
    return [_order_deploy(r, d, now)]


def _order_deploy(r: RolloutState, d: DeploymentState, now: float) -> Order:
    d.command_id = _next_command(r)
    d.attempts += 1
    d.ordered_at = now
    d.updated_by_rollout = True
    _set(d, "pending", now, f"deploy ordered (attempt {d.attempts})")
    return Order(d.device, "deploy", r.spec.model, r.spec.version, d.command_id, r.id)


def _on_error(
    r: RolloutState,
    reason: str,
    now: float,
    orders: list[Order],
    obs: Mapping[str, DeviceObservation],
) -> tuple[RolloutState, list[Order]]:
    if r.spec.error_action == "rollback":
        _transition(r, "rolled_back", "auto_rollback", reason, now, None)
        return r, orders + _rollback_orders(r, obs, now)
    _transition(r, "paused", "auto_pause", reason, now, None)
    return r, orders


def _rollback_orders(
    r: RolloutState, obs: Mapping[str, DeviceObservation] | None, now: float
) -> list[Order]:
    """Send every device this rollout updated back to the version it ran before."""
    orders = []
    for d in sorted(r.deployments.values(), key=lambda d: d.device):
        if not d.updated_by_rollout or d.status in ("reverted", "reverting"):
            continue
        if d.from_name is None or d.from_version is None:
            _set(d, "stranded", now, "no previous version to roll back to")
            continue
        o = obs.get(d.device) if obs is not None else None
        settled = d.status in ("failed", "stranded")  # no deploy still in flight
        if settled and o is not None and o.model == (d.from_name, d.from_version):
            _set(d, "reverted", now, "device already runs the previous version")
            continue
        d.command_id = _next_command(r)
        d.ordered_at = now
        _set(d, "reverting", now, f"rollback to v{d.from_version} ordered")
        orders.append(Order(d.device, "rollback", d.from_name, d.from_version, d.command_id, r.id))
    return orders


# --------------------------------------------------------------------------- actions

_ALLOWED = {
    "start": ("draft",),
    "resume": ("draft", "paused"),
    "pause": ("running",),
    "abort": ("draft", "running", "paused"),
    "rollback": ("running", "paused", "completed", "aborted"),
    "retry": ("running", "paused"),
    "approve": ("running", "paused"),
}


def act(
    rollout: RolloutState,
    action: str,
    now: float,
    *,
    actor: str | None = None,
    reason: str = "",
    observations: Mapping[str, DeviceObservation] | None = None,
) -> tuple[RolloutState, list[Order]]:
    """Apply an operator action; RolloutError(conflict=True) if the state forbids it."""
    if action not in _ALLOWED:
        raise RolloutError(f"unknown action {action!r}: use one of {', '.join(_ALLOWED)}")
    if rollout.state not in _ALLOWED[action]:
        raise RolloutError(f"cannot {action} a rollout that is {rollout.state}", conflict=True)
    r = copy.deepcopy(rollout)
    why = reason or f"{action} by {actor or 'operator'}"
    if action in ("start", "resume"):
        _transition(r, "running", action, why, now, actor)
    elif action == "pause":
        _transition(r, "paused", action, why, now, actor)
    elif action == "abort":
        _transition(r, "aborted", action, why, now, actor)
    elif action == "rollback":
        _transition(r, "rolled_back", action, why, now, actor)
        return r, _rollback_orders(r, observations, now)
    elif action == "retry":
        failed = [d for d in r.deployments.values() if d.status == "failed"]
        if not failed:
            raise RolloutError("no failed devices to retry", conflict=True)
        for d in failed:
            _set(d, "retry", now, "queued for retry")
        r.audit.append(
            AuditRecord(now, r.state, r.state, action, f"{why}: {len(failed)} devices", actor)
        )
    elif action == "approve":
        w = r.waves[r.current_wave]
        if not r.spec.manual_approval or w.approved or r.current_wave == len(r.waves) - 1:
            raise RolloutError("no wave is waiting for approval", conflict=True)
        w.approved = True
        r.audit.append(
            AuditRecord(now, r.state, r.state, action, f"{why}: wave {w.index + 1}", actor)
        )
    r.updated = now
    return r, []
