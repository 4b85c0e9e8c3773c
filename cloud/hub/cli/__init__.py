"""``edgekit hub ...``: the hub's command line (registered on ``edgekit`` as a plug-in)."""

from cloud.hub.cli.commands import register

__all__ = ["register"]
