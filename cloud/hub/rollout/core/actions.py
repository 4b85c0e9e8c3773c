"""Operator actions on a rollout — start, pause, resume, abort, rollback, retry, approve —
as pure functions next to ``advance``: ``act(rollout, action, now, ...)`` returns a new
``RolloutState`` and the ``Order``s the I/O shell publishes (only rollback sends any).
``rollback_orders`` is also what ``advance`` runs when the error action is ``rollback``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from cloud.hub.rollout.core.spec import RolloutError
from cloud.hub.rollout.core.state import (
    AuditRecord,
    DeviceObservation,
    Order,
    RolloutState,
    next_command,
    set_status,
    transition,
)


def rollback_orders(
    r: RolloutState, obs: Mapping[str, DeviceObservation] | None, now: float
) -> list[Order]:
    """Send every device this rollout updated back to the version it ran before."""
    orders = []
    for d in sorted(r.deployments.values(), key=lambda d: d.device):
        if not d.updated_by_rollout or d.status in ("reverted", "reverting", "incompatible"):
            continue
        if d.from_name is None or d.from_version is None:
            set_status(d, "stranded", now, "no previous version to roll back to")
            continue
        o = obs.get(d.device) if obs is not None else None
        settled = d.status in ("failed", "stranded")  # no deploy still in flight
        if settled and o is not None and o.model == (d.from_name, d.from_version):
            note = f"already runs the previous version v{d.from_version}"
            set_status(d, "reverted", now, note, keep_cause=True)
            continue
        d.command_id = next_command(r)
        d.ordered_at = now
        set_status(d, "reverting", now, f"rollback to v{d.from_version} ordered", keep_cause=True)
        orders.append(Order(d.device, "rollback", d.from_name, d.from_version, d.command_id, r.id))
    return orders


ALLOWED = {
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
    if action not in ALLOWED:
        raise RolloutError(f"unknown action {action!r}: use one of {', '.join(ALLOWED)}")
    if rollout.state not in ALLOWED[action]:
        raise RolloutError(f"cannot {action} a rollout that is {rollout.state}", conflict=True)
    r = copy.deepcopy(rollout)
    why = reason or f"{action} by {actor or 'operator'}"
    if action in ("start", "resume"):
        transition(r, "running", action, why, now, actor)
    elif action == "pause":
        transition(r, "paused", action, why, now, actor)
    elif action == "abort":
        transition(r, "aborted", action, why, now, actor)
    elif action == "rollback":
        transition(r, "rolled_back", action, why, now, actor)
        return r, rollback_orders(r, observations, now)
    elif action == "retry":
        failed = [d for d in r.deployments.values() if d.status == "failed"]
        if not failed:
            raise RolloutError("no failed devices to retry", conflict=True)
        for d in failed:
            d.shadow = None  # its failed shadow run is not the retry's
            set_status(d, "retry", now, "queued for retry")
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
