"""Device-side commands (agent, predict, telemetry); the cloud groups plug in by entry points."""

from edge.cli.main import main

__all__ = [
    "main",
]
