"""Staged rollouts: the pure state machine in ``core/`` and its I/O shell (store, service)."""

from cloud.hub.rollout.core.spec import GATE_METRICS, RolloutError
from cloud.hub.rollout.core.state import DEPLOYMENT_STATUSES, INCOMPATIBLE
from cloud.hub.rollout.service import RolloutService, Ticker
from cloud.hub.rollout.store import to_state

__all__ = [
    "DEPLOYMENT_STATUSES",
    "GATE_METRICS",
    "INCOMPATIBLE",
    "RolloutError",
    "RolloutService",
    "Ticker",
    "to_state",
]
