"""Staged rollouts: the pure state machine in ``core/`` and its I/O shell (store, service)."""

from cloud.hub.rollout.core.spec import GATE_METRICS, RolloutError
from cloud.hub.rollout.service import RolloutService, Ticker
from cloud.hub.rollout.store import to_state

__all__ = [
    "GATE_METRICS",
    "RolloutError",
    "RolloutService",
    "Ticker",
    "to_state",
]
