"""The device agent: wiring of config, enrollment, command checks, reporting, MQTT and HTTP
inference, replay."""

from edge.agent.agent import Agent
from edge.agent.commands import CommandGuard, CommandRefused, trusted_keys
from edge.agent.config import FIELDS, AgentConfig, Field
from edge.agent.enrollment import enroll, load_credentials

__all__ = [
    "FIELDS",
    "Agent",
    "AgentConfig",
    "CommandGuard",
    "CommandRefused",
    "Field",
    "enroll",
    "load_credentials",
    "trusted_keys",
]
