"""The shadow gate: a rollout with ``shadow`` set fails a wave when one of its devices ran
the candidate beside its served model and agreed less often than ``min_agreement``.

Unlike the KPI gates it is judged per device and needs no baseline: the comparison is the
device's own (same inputs, both models). A device that saw no input during its shadow run
(an idle device, or one that served no model to compare with) is recorded but not judged,
as the KPI gates do not wait for an idle fleet. Pure: no I/O, no clock.
"""

from __future__ import annotations

from typing import Any

from cloud.hub.rollout.core.state import (
    INCOMPATIBLE,
    DeploymentState,
    DeviceObservation,
    RolloutState,
)

SHADOW_GATE = "shadow_agreement"
# not judged: never sent this rollout's deploy, or already back on the previous version
_UNJUDGED = ("current", "skipped", INCOMPATIBLE, "reverted")


def fold_shadow(d: DeploymentState, o: DeviceObservation) -> None:
    """Keep the device's shadow report when it answers the deployment's current command
    (not while it waits for a retry: its command id is still the failed attempt's)."""
    if d.status == "retry" or o.shadow is None or d.command_id is None:
        return
    if o.shadow.command == d.command_id:
        d.shadow = o.shadow.to_json()


def shadow_gate(r: RolloutState) -> tuple[dict[str, Any] | None, str | None]:
    """The gate's entry for ``RolloutState.gates`` (None when the rollout does not shadow)
    and the reason it fails, if it does."""
    spec = r.spec.shadow
    if spec is None:
        return None, None
    judged: list[tuple[DeploymentState, float, int]] = []
    for d in sorted(r.deployments.values(), key=lambda d: d.device):
        s = d.shadow
        if s is None or d.status in _UNJUDGED:
            continue
        agreement, inputs = s.get("agreement"), s.get("inputs")
        if isinstance(agreement, (int, float)) and isinstance(inputs, int) and inputs > 0:
            judged.append((d, float(agreement), inputs))
    under = [j for j in judged if j[1] < spec.min_agreement]
    worst = min((a for _, a, _ in judged), default=None)
    entry: dict[str, Any] = {
        "metric": SHADOW_GATE,
        "value": worst,  # the lowest agreement of a judged device
        "baseline": None,
        "threshold": spec.min_agreement,
        "tolerance": None,
        "min_increase": None,
        "mode": "min_device",
        "devices": len(judged),
        "inferences": sum(n for _, _, n in judged) if judged else None,
        "min_inferences": spec.inputs,
        "waiting": False,
        "ok": (not under) if judged else None,
        "under": [d.device for d, _, _ in under],
    }
    if not under:
        return entry, None
    d, agreement, inputs = min(under, key=lambda j: (j[1], j[0].device))
    more = f"; {len(under)} devices under it" if len(under) > 1 else ""
    p95 = ((d.shadow or {}).get("candidate_latency_ms") or {}).get("p95")
    lat = f", candidate p95 {p95:.3g} ms" if isinstance(p95, (int, float)) else ""
    reason = (
        f"shadow gate: {d.device} agreed with the served model on {agreement:.1%} of "
        f"{inputs} inputs, under the minimum {spec.min_agreement:.1%}{lat}{more}"
    )
    return entry, reason
