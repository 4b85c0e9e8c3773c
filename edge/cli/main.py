"""The ``edgekit`` command.

edge/ owns the device-side commands (``agent``, ``predict``, ``telemetry``); every other
command group plugs in through the ``edgekit.commands`` entry-point group, so this module
never imports cloud/ and an edge-only install never loads TensorFlow or Flask.
Each plug-in is a ``register(subparsers)`` function that adds its parser and sets
``handler=fn(args) -> int``; heavy imports happen inside the handler, never at import time.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from typing import Any

from edge import __version__
from edge.errors import EdgekitError

log = logging.getLogger("edgekit")

# Device-side command groups, by module; each exposes register(subparsers).
EDGE_COMMANDS = ("edge.cli.agent", "edge.cli.predict", "edge.cli.telemetry")


def _load_registrars() -> list[tuple[str, Callable[[Any], None]]]:
    found: list[tuple[str, Callable[[Any], None]]] = []
    for mod_name in EDGE_COMMANDS:
        try:
            mod = importlib.import_module(mod_name)
        except ModuleNotFoundError as exc:
            if exc.name == mod_name:  # not written yet
                continue
            raise
        found.append((mod_name, mod.register))
    for ep in entry_points(group="edgekit.commands"):
        try:
            found.append((ep.name, ep.load()))
        except ModuleNotFoundError as exc:
            # A command whose extra is not installed (e.g. hub on an edge-only device).
            log.debug("command %s unavailable: %s", ep.name, exc)
        except Exception as exc:  # a broken plug-in must not take the agent down
            log.warning("command %s failed to load: %s", ep.name, exc)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgekit",
        description="Train, quantise, sign, ship and monitor models on a fleet of edge devices.",
    )
    parser.add_argument("--version", action="version", version=f"edgekit {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _name, register in _load_registrars():
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except EdgekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
