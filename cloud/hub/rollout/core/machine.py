"""The rollout state machine: pure functions, no I/O, no database, no clock.

``advance(rollout, observations, now) -> (rollout, orders)`` moves a rollout forward from
what devices REPORT (the model version they run, the deploy steps they announce, their
KPIs); ``act(rollout, action, now, ...)`` applies an operator action. Both return a new
``RolloutState`` and the deploy/rollback ``Order``s the I/O shell turns into MQTT commands.
The state dataclasses live in ``rollout_state``, the operator actions in
``rollout_actions``; this module re-exports both so callers import one place.

States: draft -> running <-> paused -> completed | aborted | rolled_back.
Deployment statuses: pending (ordered, no answer yet), committed, current (already ran the
version), skipped (runs a newer version), incompatible (can run none of the bundle's
variants: never sent the deploy, or its agent refused it; not a failure), failed, retry
(queued again), reverting, reverted, stranded (nothing to roll back to).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from cloud.hub.rollout.core.actions import act, rollback_orders
from cloud.hub.rollout.core.shadow_gate import SHADOW_GATE, fold_shadow, shadow_gate
from cloud.hub.rollout.core.spec import Gate, RolloutError, RolloutSpec
from cloud.hub.rollout.core.state import (
    ACTIONS,
    FAIL_STEPS,
    INCOMPATIBLE,
    STATES,
    TERMINAL,
    AuditRecord,
    DeploymentState,
    DeviceObservation,
    Kpis,
    Order,
    RolloutState,
    StepReport,
    WaveState,
    new_rollout,
    next_command,
    set_status,
    soaked,
    transition,
)

_OK = ("committed", "current")

__all__ = [
    "ACTIONS",
    "STATES",
    "TERMINAL",
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


# --------------------------------------------------------------------------- helpers


def _wave_members(r: RolloutState, index: int) -> list[DeploymentState]:
    """The wave's devices its thresholds count: not those skipped or incompatible."""
    return [
        d
        for d in r.deployments.values()
        if d.wave == index and d.status not in ("skipped", INCOMPATIBLE)
    ]


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
                "incompatible": counts.get(INCOMPATIBLE, 0),
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
        fold_shadow(d, o)
        step = o.step
        answers = step is not None and (
            step.command == d.command_id or (step.command is None and step.version is not None)
        )
        if d.status == "pending":
            _observe_pending(r, d, o, step if answers else None, now)
        elif (
            d.status in _OK
            and o.model is not None
            and o.model != target
            and r.state != "rolled_back"
        ):
            set_status(d, "failed", now, f"device now reports {o.model[0]} v{o.model[1]}")
        elif d.status == "reverting":
            if o.model == (d.from_name, d.from_version):
                note = f"device reports the previous version v{d.from_version}"
                set_status(d, "reverted", now, note, keep_cause=True)
            elif step is not None and step.command == d.command_id and step.step == "failed":
                note = f"rollback failed: {step.reason}".rstrip(": ")
                set_status(d, "failed", now, note, keep_cause=True)
            elif d.ordered_at is not None and now - d.ordered_at > r.spec.deploy_timeout_s:
                # Settle it, so the device is free for later rollouts (see ``busy``).
                note = f"rollback not confirmed within {r.spec.deploy_timeout_s:g} s"
                set_status(d, "failed", now, note, keep_cause=True)


def _observe_pending(
    r: RolloutState,
    d: DeploymentState,
    o: DeviceObservation,
    step: StepReport | None,
    now: float,
) -> None:
    """A deploy in flight: ``step`` is the device's answer to it (None: no answer yet)."""
    target = (r.spec.model, r.spec.version)
    refused = step is not None and step.command == d.command_id
    if refused and step is not None and step.step == "failed" and step.code == INCOMPATIBLE:
        # It checked before loading anything: nothing changed, nothing to roll back.
        d.updated_by_rollout = False
        set_status(d, INCOMPATIBLE, now, f"device refused: {step.reason}")
    elif refused and step is not None and step.step in FAIL_STEPS:
        set_status(d, "failed", now, _device_failure(step))
    elif step is not None and step.step == "committed" and o.model == target:
        set_status(d, "committed", now, "device committed and reports the version")
    elif d.ordered_at is not None and now - d.ordered_at > r.spec.deploy_timeout_s:
        set_status(d, "failed", now, f"no commit within {r.spec.deploy_timeout_s:g} s")


def _device_failure(step: StepReport) -> str:
    """The device's own reason, e.g. "device rolled back: probation failed: mean confidence
    0.104 dropped more than 0.2 below 0.991" (kept by later notes, see ``set_status``)."""
    what = "device rolled back" if step.step == "rolled_back" else "device reported failure"
    return f"{what}: {step.reason}" if step.reason else what


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
    """Record every gate's value vs its limit; return a failure reason or None.

    A gate is judged only with a baseline, ``gate_min_devices`` devices on the new version
    and ``min_inferences`` requests (inferences + errors) served by them on it; with some
    but too few it is ``waiting`` and the wave cannot finish. The new version's error rate
    is pooled over everything its devices served during the rollout when they report
    counts, so one noisy interval cannot fail it.
    """
    results, failure = [], None
    target = (r.spec.model, r.spec.version)
    kpis = [
        k
        for d in r.deployments.values()
        if d.status in _OK
        and (o := obs.get(d.device)) is not None
        and (k := o.kpis) is not None
        and (k.model, k.version) == target
    ]
    for gate in r.spec.gates:
        measured = [k for k in kpis if k.get(gate.metric) is not None]
        cand = _candidate_value(gate.metric, measured)
        counts = [k.inferences + (k.errors or 0) for k in measured if k.inferences is not None]
        served = sum(counts) if counts else None
        base = r.baseline.get(gate.metric)
        ok: bool | None = None
        waiting = False
        limit = gate.limit(base) if base is not None else None
        if cand is not None and base is not None and len(measured) >= r.spec.gate_min_devices:
            if served is not None and served < gate.min_inferences:
                # Too few to judge. Some traffic: hold the wave until there is enough; none
                # at all (an idle fleet): nothing will come, so do not wait forever.
                waiting = served > 0
            else:
                ok = gate.passes(cand, base)
                if not ok and failure is None:
                    failure = _gate_reason(gate, cand, base, served)
        results.append(
            {
                "metric": gate.metric,
                "value": cand,
                "baseline": base,
                "threshold": limit,
                "tolerance": gate.tolerance,
                "min_increase": gate.min_increase if gate.mode == "max_rel" else None,
                "mode": gate.mode,
                "devices": len(measured),
                "inferences": served,
                "min_inferences": gate.min_inferences,
                "waiting": waiting,
                "ok": ok,
            }
        )
    r.gates = results
    return failure


def _candidate_value(metric: str, kpis: list[Kpis]) -> float | None:
    if not kpis:
        return None
    if metric == "error_rate" and all(
        k.inferences is not None and k.errors is not None for k in kpis
    ):
        served = sum((k.inferences or 0) + (k.errors or 0) for k in kpis)
        if served:
            return sum(k.errors or 0 for k in kpis) / served
    vals = [v for k in kpis if (v := k.get(metric)) is not None]
    return sum(vals) / len(vals) if vals else None


def _gate_reason(gate: Gate, cand: float, base: float, served: int | None) -> str:
    op = "<" if gate.mode == "min_abs" else ">"
    tol = f"tolerance {gate.tolerance:g}"
    if gate.mode == "max_rel":
        tol = f"tolerance +{gate.tolerance:.0%} and at least +{gate.min_increase:g} ms"
    on = f", {served} inferences" if served is not None else ""
    return (
        f"health gate {gate.metric}: {cand:.4g} {op} limit {gate.limit(base):.4g} "
        f"(previous version {base:.4g}, {tol}{on})"
    )


# --------------------------------------------------------------------------- advancing


def advance(  # noqa: C901 - one tick read top to bottom; the order of checks is the rule
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
    # first: a device the shadow gate stops has failed too, and this says why
    shadow_entry, shadow_failure = shadow_gate(r)
    if shadow_entry is not None and shadow_failure is not None:
        r.gates = [*(g for g in r.gates if g.get("metric") != SHADOW_GATE), shadow_entry]
        return _on_error(r, shadow_failure, now, orders, observations)
    if size and failed / size > r.spec.error_threshold:
        reason = (
            f"wave {r.current_wave + 1}: {failed}/{size} devices failed, more than the "
            f"error threshold {r.spec.error_threshold:g}"
        )
        return _on_error(r, reason, now, orders, observations)
    gate_failure = _evaluate_gates(r, observations)
    if shadow_entry is not None:
        r.gates.append(shadow_entry)
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
        if o.id not in r.deployments and o.busy is None:
            orders.extend(_assign(r, o, now))
    for d in r.deployments.values():
        if d.status == "retry":
            seen = observations.get(d.device)
            if seen is not None and seen.incompatible:
                set_status(d, INCOMPATIBLE, now, seen.incompatible)
            else:
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
    if not soaked(r, w, now) or any(g["waiting"] for g in r.gates):
        return r, orders
    last = r.current_wave == len(r.waves) - 1
    if not last and r.spec.manual_approval and not w.approved:
        return r, orders
    if last:
        if any(d.status in ("pending", "retry") for d in r.deployments.values()):
            return r, orders
        w.finished = now
        deps = r.deployments.values()
        unfit = sum(d.status == INCOMPATIBLE for d in deps)
        if unfit and not any(d.status in _OK for d in deps):
            # Nothing runs the new version anywhere: not a success a pipeline may trust.
            reason = (
                f"no target device can run {r.spec.model} v{r.spec.version}: "
                f"{unfit} incompatible, none committed"
            )
            transition(r, "aborted", "auto_abort", reason, now, None)
            return r, orders
        done = f"all {len(r.waves)} waves done"
        if unfit:
            done += f" ({unfit} device(s) incompatible)"
        transition(r, "completed", "complete", done, now, None)
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
    """Take a device into the current wave. What it reports running now is what a rollback
    of this rollout sends it back to (``advance`` skips devices whose report is about to
    change because another rollout's command is in flight)."""
    name, version = r.spec.model, r.spec.version
    d = DeploymentState(device=o.id, wave=r.current_wave, status="pending", updated=now)
    if o.model is not None:
        d.from_name, d.from_version = o.model
    r.deployments[o.id] = d
    if o.model == (name, version):
        set_status(d, "current", now, "already runs this version")
        return []
    if o.model is not None and o.model[0] == name and o.model[1] > version:
        set_status(d, "skipped", now, f"runs newer version {o.model[1]}")
        return []
    if o.incompatible:
        set_status(d, INCOMPATIBLE, now, o.incompatible)
        return []
    return [_order_deploy(r, d, now)]


def _order_deploy(r: RolloutState, d: DeploymentState, now: float) -> Order:
    d.command_id = next_command(r)
    d.attempts += 1
    d.ordered_at = now
    d.updated_by_rollout = True
    d.shadow = None  # the new command's shadow run is still to come
    set_status(d, "pending", now, f"deploy ordered (attempt {d.attempts})")
    return Order(
        d.device, "deploy", r.spec.model, r.spec.version, d.command_id, r.id, r.spec.shadow
    )


def _on_error(
    r: RolloutState,
    reason: str,
    now: float,
    orders: list[Order],
    obs: Mapping[str, DeviceObservation],
) -> tuple[RolloutState, list[Order]]:
    if r.spec.error_action == "rollback":
        transition(r, "rolled_back", "auto_rollback", reason, now, None)
        return r, orders + rollback_orders(r, obs, now)
    transition(r, "paused", "auto_pause", reason, now, None)
    return r, orders


# --------------------------------------------------------------------------- actions
