"""The capture policy: which live inputs a device keeps for labeling, and how many.

Off by default: with ``enabled`` false nothing is captured at all, whatever else is set.
When on, an input is kept for the first reason that applies, in this order:
``requested`` (the operator asked for the next N), ``wrong_label`` (the device was told the
true label and the model missed it), ``shadow_disagreement``, ``out_of_range`` (the range
guard flagged a feature), ``low_confidence`` (top score below the threshold), ``drift`` (the
device is in a drift alert) and ``random`` (a share of all inputs). The bounds (disk budget,
rate) apply to every reason.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

from edge.contract import MAX_BATCH
from edge.errors import ConfigError

BOOL_KEYS = ("enabled", "out_of_range", "drift", "shadow_disagreement", "wrong_label")
SHARE_KEYS = ("low_confidence", "random")
INT_KEYS = ("next", "max_per_minute", "upload_batch")
FLOAT_KEYS = ("max_mb", "upload_interval")
MAX_NEXT = 1_000_000


@dataclass(frozen=True)
class CapturePolicy:
    """Agent config key ``capture`` (docs/agent.md, "Capture")."""

    enabled: bool = False
    low_confidence: float = 0.6  # keep inputs whose top score is below this (0 = never)
    out_of_range: bool = True
    drift: bool = True
    shadow_disagreement: bool = True
    wrong_label: bool = True
    random: float = 0.0  # share of all inputs kept at random
    next: int = 0  # keep the next N inputs whatever the reason ("requested")
    max_mb: float = 50.0  # disk budget of the pending samples; oldest dropped first
    max_per_minute: int = 30  # samples kept per minute at most; more are skipped, counted
    upload_batch: int = 32  # samples per upload request (1..MAX_BATCH)
    upload_interval: float = 10.0  # seconds between upload passes when idle

    @property
    def max_bytes(self) -> int:
        return max(1, int(self.max_mb * (1 << 20)))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def merged(self, changes: Any, key: str = "capture") -> CapturePolicy:
        """This policy with ``changes`` (an object of some keys, true/false, or its JSON
        text) applied and validated. ``next`` is a one-shot request, never inherited."""
        changes = _as_object(changes, key)
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ConfigError(f"{key}: unknown key(s) {', '.join(unknown)}")
        values = {**self.to_dict(), "next": 0}
        for name, value in changes.items():
            values[name] = _value(name, value, f"{key}.{name}")
        return CapturePolicy(**values)

    @staticmethod
    def parse(value: Any, key: str = "capture") -> CapturePolicy:
        """A policy from a config value (TOML table, JSON text, ``true``/``false``)."""
        if isinstance(value, CapturePolicy):
            return value
        return CapturePolicy().merged(value, key)

    def reason(
        self,
        *,
        confidence: float | None,
        out_of_range: bool = False,
        drifting: bool = False,
        wrong_label: bool = False,
        shadow_disagrees: bool = False,
        requested: bool = False,
        draw: float = 1.0,
    ) -> str | None:
        """The reason to keep an input with these facts, or None. ``draw`` is a uniform
        random number in [0, 1) for the ``random`` share."""
        if not self.enabled:
            return None
        if requested:
            return "requested"
        if wrong_label and self.wrong_label:
            return "wrong_label"
        if shadow_disagrees and self.shadow_disagreement:
            return "shadow_disagreement"
        if out_of_range and self.out_of_range:
            return "out_of_range"
        if confidence is not None and confidence < self.low_confidence:
            return "low_confidence"
        if drifting and self.drift:
            return "drift"
        if draw < self.random:
            return "random"
        return None


def _as_object(value: Any, key: str) -> dict[str, Any]:
    """A TOML table or JSON object as is; ``true``/``on`` and ``false``/``off`` switch
    capture on or off (a flag or an environment variable); other text must be JSON."""
    if isinstance(value, bool):
        return {"enabled": value}
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("1", "true", "yes", "on"):
            return {"enabled": True}
        if word in ("0", "false", "no", "off"):
            return {"enabled": False}
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ConfigError(f"{key}: expected on, off or a JSON object, got {value!r}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{key}: expected an object of capture settings, got {value!r}")
    return value


def _value(name: str, value: Any, where: str) -> Any:
    if name in BOOL_KEYS:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    if name in SHARE_KEYS:
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{where}: must be between 0 and 1, got {value}")
        return float(value)
    if name in INT_KEYS:
        if value != int(value):
            raise ConfigError(f"{where}: expected a whole number, got {value}")
        n = int(value)
        lo, hi = {"next": (0, MAX_NEXT), "max_per_minute": (1, 1_000_000),
                  "upload_batch": (1, MAX_BATCH)}[name]  # fmt: skip
        if not lo <= n <= hi:
            raise ConfigError(f"{where}: must be between {lo} and {hi}, got {n}")
        return n
    if value <= 0:
        raise ConfigError(f"{where}: must be greater than 0, got {value}")
    return float(value)
