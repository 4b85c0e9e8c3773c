"""The device agent: wiring of config, enrollment, reporting, MQTT and HTTP inference, replay."""

from edge.agent.agent import Agent
from edge.agent.config import FIELDS, AgentConfig, Field
from edge.agent.enrollment import enroll, load_credentials

__all__ = [
    "FIELDS",
    "Agent",
    "AgentConfig",
    "Field",
    "enroll",
    "load_credentials",
]
