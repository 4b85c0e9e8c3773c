"""What an operator asks for when starting a rollout, parsed strictly from API JSON.

Waves are cumulative: ``[10, 50, 100]`` means 10 %, then 50 %, then every device of the
target; ``{"count": 2}`` means the first two devices. Gates compare the new version's KPIs
with those of the version it replaces; tolerances are absolute for rates and scores and
relative for latency. Small samples are noisy, so a gate is only judged once the new version
served ``min_inferences`` inferences, and the latency gate also needs an absolute increase
above a floor (a 0.5 ms -> 1.9 ms change is +280 % but harmless).

``shadow`` (off by default) asks each device to run the candidate beside the model it
serves on N live inputs before activating it (edge/contract/shadow.py); a device whose
agreement falls under ``min_agreement`` fails the wave's shadow gate.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from typing import Any

from cloud.errors import RolloutError
from edge.contract import ShadowSettings
from edge.errors import ContractError

ERROR_ACTIONS = ("pause", "rollback")
# metric -> (comparison, default tolerance). "max_abs": cand <= base + tol;
# "max_rel": cand <= base * (1 + tol); "min_abs": cand >= base - tol.
# every field POST /api/v1/rollouts takes (the OpenAPI document lists the same)
ROLLOUT_FIELDS = frozenset({
    "model", "version", "target", "waves", "soak_seconds", "success_threshold",
    "error_threshold", "error_action", "gates", "gate_min_devices", "manual_approval",
    "deploy_timeout_s", "start", "gate_min_inferences", "p95_latency_min_increase_ms",
    "shadow",
})  # fmt: skip
GATE_METRICS: dict[str, tuple[str, float]] = {
    "error_rate": ("max_abs", 0.02),
    "p95_latency_ms": ("max_rel", 0.5),
    "drift": ("max_abs", 0.1),
    "accuracy": ("min_abs", 0.05),
}
DEFAULT_P95_MIN_INCREASE_MS = 5.0
# One error in 50 inferences is 2 %, the default error_rate tolerance: judging fewer would
# let a single unlucky error fail the gate.
DEFAULT_GATE_MIN_INFERENCES = 50
_GATE_KEYS = {
    "p95_latency_ms": ("relative", "min_increase_ms", "min_inferences"),
    "error_rate": ("tolerance", "min_inferences"),
    "drift": ("tolerance", "min_inferences"),
    "accuracy": ("tolerance", "min_inferences"),
}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
# Caps: a spec is stored and re-parsed on every tick, so none of it may be unbounded.
MAX_INT = 2**31 - 1  # what the database's INTEGER columns hold
MAX_WAVES = 20
MAX_TARGET_DEVICES = 10_000
MAX_TARGET_TAGS = 32
MAX_COUNT = 1_000_000  # devices in a {"count": n} wave, gate_min_devices
MAX_INFERENCES = 10**9
MAX_SOAK_S = 30 * 86400.0
MAX_TIMEOUT_S = 7 * 86400.0
# the largest tolerance per gate metric: rates and accuracy are shares (<= 1), drift a PSI,
# latency relative (10 = +1000 %)
MAX_TOLERANCE = {"error_rate": 1.0, "accuracy": 1.0, "drift": 10.0, "p95_latency_ms": 10.0}
MAX_FLOOR_MS = 1e6


@dataclass(frozen=True)
class Wave:
    kind: str  # percent | count
    value: float

    def cumulative(self, n_target: int) -> int:
        """How many target devices this wave covers in total (earlier waves included)."""
        if self.kind == "percent":
            return min(n_target, math.ceil(self.value * n_target / 100.0 - 1e-9))
        return min(n_target, int(self.value))

    def to_json(self) -> Any:
        return self.value if self.kind == "percent" else {"count": int(self.value)}


@dataclass(frozen=True)
class Gate:
    """One health gate. ``min_increase`` (p95 latency only, ms) is an absolute floor: the
    gate fails only when the candidate exceeds BOTH the relative limit and baseline + floor.
    ``min_inferences``: the gate stays unjudged until the new version served that many."""

    metric: str
    tolerance: float
    min_increase: float = 0.0
    min_inferences: int = 0

    @property
    def mode(self) -> str:
        return GATE_METRICS[self.metric][0]

    def limit(self, baseline: float) -> float:
        if self.mode == "max_rel":
            return max(baseline * (1.0 + self.tolerance), baseline + self.min_increase)
        if self.mode == "max_abs":
            return baseline + self.tolerance
        return baseline - self.tolerance

    def passes(self, candidate: float, baseline: float) -> bool:
        limit = self.limit(baseline)
        return candidate >= limit if self.mode == "min_abs" else candidate <= limit

    def to_json(self, floor: float, min_inferences: int) -> Any:
        """A bare number when the spec-level defaults apply (the form older clients send)."""
        rel = self.mode == "max_rel"
        if self.min_increase == (floor if rel else 0.0) and self.min_inferences == min_inferences:
            return self.tolerance
        if rel:
            return {
                "relative": self.tolerance,
                "min_increase_ms": self.min_increase,
                "min_inferences": self.min_inferences,
            }
        return {"tolerance": self.tolerance, "min_inferences": self.min_inferences}


def _default_gates() -> tuple[Gate, ...]:
    return tuple(
        Gate(
            m,
            tol,
            DEFAULT_P95_MIN_INCREASE_MS if mode == "max_rel" else 0.0,
            DEFAULT_GATE_MIN_INFERENCES,
        )
        for m, (mode, tol) in GATE_METRICS.items()
    )


@dataclass(frozen=True)
class RolloutSpec:
    model: str
    version: int
    tags: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    all_devices: bool = False
    waves: tuple[Wave, ...] = (Wave("percent", 100.0),)
    soak_seconds: float = 0.0
    success_threshold: float = 1.0  # share of a wave committed before the next wave
    error_threshold: float = 0.0  # share of a wave failed above which error_action runs
    error_action: str = "pause"
    gates: tuple[Gate, ...] = field(default_factory=_default_gates)
    gate_min_devices: int = 1
    gate_min_inferences: int = DEFAULT_GATE_MIN_INFERENCES
    p95_latency_min_increase_ms: float = DEFAULT_P95_MIN_INCREASE_MS
    manual_approval: bool = False
    deploy_timeout_s: float = 900.0
    shadow: ShadowSettings | None = None  # signed into every deploy command it sends
    # ``devices`` and ``tags`` as sets: ``targets`` runs for every device on every tick,
    # and a tuple lookup made that quadratic (10^8 comparisons at 10,000 named devices)
    _device_set: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _tag_set: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_device_set", frozenset(self.devices))
        object.__setattr__(self, "_tag_set", frozenset(self.tags))

    def targets(self, device_id: str, tags: tuple[str, ...] | list[str]) -> bool:
        """Device ids are matched exactly; tags must all be present on the device."""
        if self.all_devices or device_id in self._device_set:
            return True
        return bool(self._tag_set) and self._tag_set.issubset(tags)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "target": {
                "tags": list(self.tags),
                "devices": list(self.devices),
                "all": self.all_devices,
            },
            "waves": [w.to_json() for w in self.waves],
            "soak_seconds": self.soak_seconds,
            "success_threshold": self.success_threshold,
            "error_threshold": self.error_threshold,
            "error_action": self.error_action,
            "gates": {
                m: next(
                    (
                        g.to_json(self.p95_latency_min_increase_ms, self.gate_min_inferences)
                        for g in self.gates
                        if g.metric == m
                    ),
                    None,
                )
                for m in GATE_METRICS
            },
            "gate_min_devices": self.gate_min_devices,
            "gate_min_inferences": self.gate_min_inferences,
            "p95_latency_min_increase_ms": self.p95_latency_min_increase_ms,
            "manual_approval": self.manual_approval,
            "deploy_timeout_s": self.deploy_timeout_s,
            "shadow": self.shadow.to_dict() if self.shadow is not None else None,
        }

    @staticmethod
    def parse(obj: Any, *, default_timeout_s: float = 900.0) -> RolloutSpec:
        if not isinstance(obj, dict):
            raise RolloutError("rollout must be a JSON object")
        unknown = sorted(set(obj) - ROLLOUT_FIELDS)
        if unknown:
            raise RolloutError(f"unknown rollout field(s): {', '.join(unknown)}")
        model = obj.get("model")
        if not isinstance(model, str) or not _NAME_RE.match(model):
            raise RolloutError("'model' must be a model name")
        version = _int(obj.get("version"), "version", minimum=1, maximum=MAX_INT)
        tags, devices, everyone = _target(obj.get("target"))
        waves = _waves(obj.get("waves", [100]))
        floor = _num(
            obj.get("p95_latency_min_increase_ms", DEFAULT_P95_MIN_INCREASE_MS),
            "p95_latency_min_increase_ms", 0, MAX_FLOOR_MS,
        )  # fmt: skip
        min_inferences = _int(
            obj.get("gate_min_inferences", DEFAULT_GATE_MIN_INFERENCES),
            "gate_min_inferences", minimum=0, maximum=MAX_INFERENCES,
        )  # fmt: skip
        deploy_timeout = _num(
            obj.get("deploy_timeout_s", default_timeout_s), "deploy_timeout_s", 1, MAX_TIMEOUT_S
        )
        return RolloutSpec(
            model=model,
            version=version,
            tags=tags,
            devices=devices,
            all_devices=everyone,
            waves=waves,
            soak_seconds=_num(obj.get("soak_seconds", 0), "soak_seconds", 0, MAX_SOAK_S),
            success_threshold=_num(obj.get("success_threshold", 1.0), "success_threshold", 0, 1),
            error_threshold=_num(obj.get("error_threshold", 0.0), "error_threshold", 0, 1),
            error_action=_choice(obj.get("error_action", "pause"), "error_action", ERROR_ACTIONS),
            gates=_gates(obj.get("gates"), floor, min_inferences),
            gate_min_devices=_int(
                obj.get("gate_min_devices", 1), "gate_min_devices", minimum=1, maximum=MAX_COUNT
            ),
            gate_min_inferences=min_inferences,
            p95_latency_min_increase_ms=floor,
            manual_approval=_bool(obj.get("manual_approval", False), "manual_approval"),
            deploy_timeout_s=deploy_timeout,
            shadow=_shadow(obj.get("shadow"), deploy_timeout),
        )


def _shadow(v: Any, deploy_timeout_s: float) -> ShadowSettings | None:
    """Null (off) or {inputs, min_agreement, timeout}; the shadow run must fit into the
    deploy timeout, or the hub would call the device failed while it still shadows."""
    if v is None:
        return None
    try:
        shadow = ShadowSettings.parse(v, "'shadow'")
    except ContractError as exc:
        raise RolloutError(str(exc)) from None
    if shadow.timeout >= deploy_timeout_s:
        raise RolloutError(
            f"'shadow.timeout' ({shadow.timeout:g} s) must be shorter than deploy_timeout_s "
            f"({deploy_timeout_s:g} s)"
        )
    return shadow


def _int(v: Any, name: str, *, minimum: int, maximum: int) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not minimum <= v <= maximum:
        raise RolloutError(f"'{name}' must be an integer from {minimum} to {maximum}")
    return v


def _num(v: Any, name: str, lo: float, hi: float) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not (lo <= v <= hi):
        raise RolloutError(f"'{name}' must be a number between {lo:g} and {hi:g}")
    return float(v)


def _bool(v: Any, name: str) -> bool:
    if not isinstance(v, bool):
        raise RolloutError(f"'{name}' must be true or false")
    return v


def _choice(v: Any, name: str, options: tuple[str, ...]) -> str:
    if v not in options:
        raise RolloutError(f"'{name}' must be one of {', '.join(options)}")
    return str(v)


def _names(v: Any, name: str, cap: int) -> tuple[str, ...]:
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(s, str) and _NAME_RE.match(s) for s in v):
        raise RolloutError(f"'target.{name}' must be a list of names")
    if len(v) > cap:
        raise RolloutError(f"'target.{name}' may name at most {cap} entries")
    return tuple(dict.fromkeys(v))


def _target(v: Any) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    if not isinstance(v, dict):
        raise RolloutError("'target' must be an object with 'tags' and/or 'devices'")
    unknown = sorted(set(v) - {"tags", "devices", "all"})
    if unknown:
        raise RolloutError(f"unknown target field(s): {', '.join(unknown)}")
    tags = _names(v.get("tags"), "tags", MAX_TARGET_TAGS)
    devices = _names(v.get("devices"), "devices", MAX_TARGET_DEVICES)
    everyone = _bool(v.get("all", False), "target.all")
    if not (tags or devices or everyone):
        raise RolloutError("'target' names no devices: give tags, devices or \"all\": true")
    return tags, devices, everyone


def _waves(v: Any) -> tuple[Wave, ...]:
    if not isinstance(v, list) or not v or len(v) > MAX_WAVES:
        raise RolloutError(f"'waves' must be a list of 1 to {MAX_WAVES} waves (e.g. [10, 50, 100])")
    waves: list[Wave] = []
    for item in v:
        if isinstance(item, dict) and set(item) == {"count"}:
            n = _int(item["count"], "waves[].count", minimum=1, maximum=MAX_COUNT)
            waves.append(Wave("count", float(n)))
        elif isinstance(item, dict) and set(item) == {"percent"}:
            waves.append(Wave("percent", _num(item["percent"], "waves[].percent", 0.01, 100)))
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            waves.append(Wave("percent", _num(item, "waves[]", 0.01, 100)))
        else:
            raise RolloutError('each wave is a percentage, {"percent": p} or {"count": n}')
    if len({w.kind for w in waves}) > 1:
        raise RolloutError("waves must be all percentages or all counts")
    if any(b.value <= a.value for a, b in itertools.pairwise(waves)):
        raise RolloutError("waves are cumulative and must strictly increase")
    return tuple(waves)


def _gates(v: Any, floor: float, min_inferences: int) -> tuple[Gate, ...]:
    if v is None:
        v = {}
    if not isinstance(v, dict):
        raise RolloutError("'gates' must be an object {metric: tolerance, object or null}")
    unknown = sorted(set(v) - set(GATE_METRICS))
    if unknown:
        raise RolloutError(f"unknown gate(s) {', '.join(unknown)}: use {', '.join(GATE_METRICS)}")
    gates = []
    for metric, (_mode, default) in GATE_METRICS.items():
        if metric in v and v[metric] is None:
            continue  # explicitly disabled
        gates.append(_gate(metric, v.get(metric, default), default, floor, min_inferences))
    return tuple(gates)


def _gate(metric: str, v: Any, default: float, floor: float, min_inferences: int) -> Gate:
    """A number (the tolerance, spec-level floor and minimum) or an object with its own."""
    rel = GATE_METRICS[metric][0] == "max_rel"
    own_floor = floor if rel else 0.0
    cap = MAX_TOLERANCE[metric]
    if not isinstance(v, dict):
        return Gate(metric, _num(v, f"gates.{metric}", 0, cap), own_floor, min_inferences)
    keys = _GATE_KEYS[metric]
    unknown = sorted(set(v) - set(keys))
    if unknown:
        raise RolloutError(
            f"unknown field(s) {', '.join(unknown)} in gates.{metric}: use {', '.join(keys)}"
        )
    tol_key = keys[0]
    tolerance = _num(v.get(tol_key, default), f"gates.{metric}.{tol_key}", 0, cap)
    if rel:
        own_floor = _num(
            v.get("min_increase_ms", floor), f"gates.{metric}.min_increase_ms", 0, MAX_FLOOR_MS
        )
    n = _int(
        v.get("min_inferences", min_inferences), f"gates.{metric}.min_inferences",
        minimum=0, maximum=MAX_INFERENCES,
    )  # fmt: skip
    return Gate(metric, tolerance, own_floor, n)
