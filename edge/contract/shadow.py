"""The shadow settings a rollout signs into its deploy commands.

A rollout may ask each device of a wave to run the candidate beside the model it serves on
``inputs`` live inputs (waiting at most ``timeout`` seconds) before activating it, and to
refuse it when fewer than ``min_agreement`` of its top-1 answers match. The same three
keys exist in the agent's config (``shadow_inputs``, ``shadow_min_agreement``,
``shadow_timeout``); a command's settings win over them for that one deploy. The limits are
those the agent's remote config enforces on the same keys, so neither path can ask more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from edge.errors import ContractError

SHADOW_KEYS = ("inputs", "min_agreement", "timeout")
MAX_SHADOW_INPUTS = 100_000
MIN_SHADOW_TIMEOUT_S = 1.0
MAX_SHADOW_TIMEOUT_S = 86_400.0
DEFAULT_SHADOW_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class ShadowSettings:
    """``inputs`` >= 1 (a rollout without shadowing sends none), ``min_agreement`` a share
    from 0 to 1, ``timeout`` in seconds."""

    inputs: int
    min_agreement: float = 0.0
    timeout: float = DEFAULT_SHADOW_TIMEOUT_S

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "min_agreement": self.min_agreement, "timeout": self.timeout}

    @staticmethod
    def parse(obj: Any, where: str = "shadow") -> ShadowSettings:
        """Strict: unknown keys are refused too, since a misspelt key would silently mean
        "no gate" on a setting whose whole point is to stop a bad model."""
        if not isinstance(obj, dict):
            raise ContractError(f"{where}: must be an object with {', '.join(SHADOW_KEYS)}")
        unknown = sorted(set(obj) - set(SHADOW_KEYS))
        if unknown:
            raise ContractError(
                f"{where}: unknown field(s) {', '.join(unknown)} (use {', '.join(SHADOW_KEYS)})"
            )
        inputs = obj.get("inputs")
        if (
            not isinstance(inputs, int)
            or isinstance(inputs, bool)
            or not 1 <= inputs <= MAX_SHADOW_INPUTS
        ):
            raise ContractError(
                f"{where}: 'inputs' must be an integer from 1 to {MAX_SHADOW_INPUTS}"
            )
        return ShadowSettings(
            inputs=inputs,
            min_agreement=_number(obj.get("min_agreement", 0.0), where, "min_agreement", 0.0, 1.0),
            timeout=_number(
                obj.get("timeout", DEFAULT_SHADOW_TIMEOUT_S), where, "timeout",
                MIN_SHADOW_TIMEOUT_S, MAX_SHADOW_TIMEOUT_S,
            ),
        )  # fmt: skip


def _number(v: Any, where: str, name: str, lo: float, hi: float) -> float:
    if (
        not isinstance(v, (int, float))
        or isinstance(v, bool)
        or not math.isfinite(v)
        or not lo <= v <= hi
    ):
        raise ContractError(f"{where}: {name!r} must be a number from {lo:g} to {hi:g}")
    return float(v)
