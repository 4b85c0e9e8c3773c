"""``edgekit agent run``: start the agent and serve until SIGTERM / Ctrl-C.

Every config key is also a flag (``--kebab-case``); see edge/agent/config.py and docs/agent.md.
Only flags given on the command line override the config file and the environment.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from typing import Any

from edge.agent import FIELDS, Field


def register(subparsers: Any) -> None:
    agent = subparsers.add_parser("agent", help="run the edge agent on this device")
    sub = agent.add_subparsers(dest="agent_command", metavar="SUBCOMMAND")
    run = sub.add_parser(
        "run",
        help="serve models, install deploys, publish status and telemetry",
        description="Run the edge agent. Flags override EDGEKIT_* variables, which override "
        "the --config file (TOML, same keys with underscores).",
    )
    run.add_argument("--config", type=str, default=None, help="TOML config file")
    for key, spec in FIELDS.items():
        _add_flag(run, key, spec)
    run.set_defaults(handler=run_agent)
    agent.set_defaults(handler=lambda _args: (agent.print_help(), 2)[1])


def _add_flag(parser: argparse.ArgumentParser, key: str, spec: Field) -> None:
    flag = "--" + key.replace("_", "-")
    if spec.parse_value.__name__ == "_bool":
        parser.add_argument(
            flag, dest=key, action=argparse.BooleanOptionalAction, default=None, help=spec.help
        )
    else:
        parser.add_argument(
            flag, dest=key, default=None, metavar=key.split("_")[-1].upper(), help=spec.help
        )


def _say(msg: str) -> None:
    print(f"edgekit agent: {msg}", flush=True)


def run_agent(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edge.agent import Agent, config, enroll, load_credentials

    cli = {key: getattr(args, key, None) for key in FIELDS}
    cfg = config.load(cli, config_file=Path(args.config) if args.config else None)
    if cfg.hub and cfg.enroll_token and load_credentials(cfg.data_dir) is None:
        _say(f"enrolling with {cfg.hub} ...")
        creds = enroll(cfg.hub, cfg.enroll_token, cfg.device_id, cfg.data_dir)
        _say(f"enrolled (tags: {', '.join(creds['tags']) or 'none'})")
    t0 = time.monotonic()
    agent = Agent(cfg)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    _say(f"device {cfg.device_id}, boot {agent.boot}, broker {cfg.broker}")
    try:
        agent.start()
    except BaseException:
        agent.stop(graceful=False)
        raise
    model = agent.server.current
    served = f"{model.slot.id} on {model.runtime}-{model.precision}" if model else "no model yet"
    _say(f"serving {served}; ready in {time.monotonic() - t0:.2f} s")
    if agent.http is not None:
        _say(f"local HTTP API on {agent.http.url}")
    if not agent.transport.wait_connected(5.0):
        why = getattr(agent.transport, "last_error", None) or "not reachable yet"
        _say(f"broker {cfg.broker}: {why}; retrying in the background")
    # Wake up regularly: the OS may deliver SIGTERM to another thread, and CPython only
    # runs the handler when the main thread executes bytecode; an untimed wait can then
    # sleep through it forever (seen once in CI).
    while not stop.wait(0.5):
        pass
    _say("stopping")
    agent.stop(graceful=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    from edge.cli.main import main

    sys.exit(main(["agent", "run", *sys.argv[1:]]))
