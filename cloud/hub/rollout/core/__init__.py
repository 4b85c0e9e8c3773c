"""The rollout state machine, pure: ``advance(rollout, observations, now)`` returns the next
state and the commands to send. No I/O, no clock, no database: it imports only itself,
like Flask's ``sansio``, so every rule is tested without a broker.
"""

from cloud.hub.rollout.core.machine import advance, wave_progress
from cloud.hub.rollout.core.spec import RolloutSpec, Wave
from cloud.hub.rollout.core.state import ACTIONS, RolloutState

__all__ = [
    "ACTIONS",
    "RolloutSpec",
    "RolloutState",
    "Wave",
    "advance",
    "wave_progress",
]
