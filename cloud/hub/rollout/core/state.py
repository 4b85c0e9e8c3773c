"""Rollout state: the dataclasses ``advance`` and ``act`` read and return, and the small
mutators both use (state transitions with their audit record, deployment statuses,
command ids). Pure: no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cloud.hub.rollout.core.spec import RolloutSpec, Wave
from edge.contract import ShadowSettings

STATES = ("draft", "running", "paused", "completed", "aborted", "rolled_back")
TERMINAL = ("completed", "aborted", "rolled_back")
ACTIONS = ("start", "pause", "resume", "abort", "rollback", "retry", "approve")
FAIL_STEPS = ("failed", "rolled_back")
# A device that can run none of the bundle's variants (the hub's check of its reported
# capabilities, or the agent's refusal with this ``detail.code``): never sent the deploy
# (again), not a failure, not counted in its wave's thresholds.
INCOMPATIBLE = "incompatible"
DEPLOYMENT_STATUSES = (
    "pending", "committed", "current", "skipped", INCOMPATIBLE, "failed", "retry",
    "reverting", "reverted", "stranded",
)  # fmt: skip


@dataclass(frozen=True)
class Kpis:
    """A device's latest KPIs and the model version they were measured on.

    ``inferences``/``errors`` count what the device served on that version during the
    rollout (None: not tracked, so minimum-sample rules cannot apply); ``ts`` is when the
    KPIs were measured (the telemetry's timestamp)."""

    model: str
    version: int
    error_rate: float | None = None
    p95_latency_ms: float | None = None
    drift: float | None = None
    accuracy: float | None = None
    inferences: int | None = None
    errors: int | None = None
    ts: float | None = None

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
    code: str = ""  # the agent's stable reason word (``detail.code``), e.g. "incompatible"


@dataclass(frozen=True)
class ShadowReport:
    """A device's shadow run for one deploy command (its ``shadow`` deploy event):
    ``agreement`` over ``inputs`` live inputs (None: it saw none), the candidate's and the
    served model's latency as ``{"p50": ms, "p95": ms}`` (None when unknown)."""

    command: str | None
    inputs: int
    agreement: float | None
    wanted: int | None = None
    errors: int = 0
    candidate_latency_ms: dict[str, float] | None = None
    served_latency_ms: dict[str, float] | None = None

    def to_json(self) -> dict[str, Any]:
        """What the deployment keeps and the API shows (the command is the deployment's)."""
        return {
            "inputs": self.inputs,
            "wanted": self.wanted,
            "agreement": self.agreement,
            "errors": self.errors,
            "candidate_latency_ms": self.candidate_latency_ms,
            "served_latency_ms": self.served_latency_ms,
        }


@dataclass(frozen=True)
class DeviceObservation:
    """What one device reports. ``model`` is its newest report of what it runs (the hub
    orders status and telemetry in device time, see device_reports.py); ``busy`` names
    another rollout whose command to it is still in flight."""

    id: str
    online: bool
    tags: tuple[str, ...] = ()
    model: tuple[str, int] | None = None  # (name, version) the device reports it runs
    kpis: Kpis | None = None
    step: StepReport | None = None
    busy: str | None = None
    # why it can run none of the rollout's bundle variants (from its last reported
    # capabilities); None when it can, or when it never reported them (then it is sent the
    # deploy, and its agent refuses it if it must)
    incompatible: str | None = None
    shadow: ShadowReport | None = None  # its latest shadow run for this rollout


@dataclass(frozen=True)
class Order:
    device: str
    kind: str  # deploy | rollback
    name: str
    version: int
    command_id: str
    rollout: str
    shadow: ShadowSettings | None = None  # a deploy's shadow run (the rollout's setting)


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
    shadow: dict[str, Any] | None = None  # ShadowReport.to_json() of its current command


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
        if any(g.get("waiting") for g in self.gates):
            return "samples"  # a gate still lacks inferences: the wave cannot finish yet
        if self.spec.manual_approval and w.finished is None and soaked(self, w, None):
            return "approval"
        return "soak"


def new_rollout(rid: str, spec: RolloutSpec, now: float, actor: str | None = None) -> RolloutState:
    r = RolloutState(id=rid, spec=spec, created=now, updated=now)
    r.waves = [WaveState(i, w) for i, w in enumerate(spec.waves)]
    r.audit.append(AuditRecord(now, "draft", "draft", "create", "rollout created", actor))
    return r


def transition(
    r: RolloutState, to: str, action: str, reason: str, now: float, actor: str | None
) -> None:
    r.audit.append(AuditRecord(now, r.state, to, action, reason, actor))
    r.state = to
    r.updated = now


def next_command(r: RolloutState) -> str:
    r.command_seq += 1
    return f"{r.id}-{r.command_seq}"


def soaked(r: RolloutState, w: WaveState, now: float | None) -> bool:
    if w.soak_started is None:
        return False
    return now is None or now - w.soak_started >= r.spec.soak_seconds


CAUSE_SEP = " → "  # "<why the device failed> → <the hub's latest note>"


def set_status(
    d: DeploymentState, status: str, now: float, reason: str, *, keep_cause: bool = False
) -> None:
    """Set a deployment's status and note. ``keep_cause``: a failed device's reason (its
    own words, e.g. why its probation rolled back) stays in front of the hub's note, so
    reverting or reverting it never hides why it failed."""
    if keep_cause:
        if CAUSE_SEP in d.reason:
            cause = d.reason.rsplit(CAUSE_SEP, 1)[0]
        else:
            cause = d.reason if d.status == "failed" else ""
        reason = f"{cause}{CAUSE_SEP}{reason}" if cause else reason
    d.status, d.updated, d.reason = status, now, reason
