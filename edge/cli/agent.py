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
from edge.cli import agent_service


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
    agent_service.register(sub)
    agent.set_defaults(handler=lambda _args: (agent.print_help(), 2)[1])


def _add_flag(parser: argparse.ArgumentParser, key: str, spec: Field) -> None:
    flag = "--" + key.replace("_", "-")
    if spec.parse_value.__name__ == "_bool":
        parser.add_argument(
            flag, dest=key, action=argparse.BooleanOptionalAction, default=None, help=spec.help
        )
    elif key == "broker":  # repeated for a cluster: every URL kept, in order (failover)
        parser.add_argument(flag, dest=key, action="append", default=None, metavar="URL",
                            help=spec.help)  # fmt: skip
    elif spec.flag_const is not None:  # ``--ha-discovery`` alone, or ``--ha-discovery X``
        parser.add_argument(
            flag, dest=key, nargs="?", const=spec.flag_const, default=None, help=spec.help
        )
    else:
        parser.add_argument(
            flag, dest=key, default=None, metavar=key.split("_")[-1].upper(), help=spec.help
        )


def service_status(agent: Any) -> str:
    """The short state systemd shows (``STATUS=``): what is served, whether MQTT is up."""
    model = agent.server.current
    served = f"serving {model.slot.id} ({model.runtime}-{model.precision})" if model else "no model"
    broker = "broker connected" if agent.transport.connected else "broker unreachable, retrying"
    return f"{served}; {broker}"


def _say(msg: str) -> None:
    print(f"edgekit agent: {msg}", flush=True)


def run_agent(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edge.agent import Agent, config, enroll, load_credentials
    from edge.agent.liveness import Liveness
    from edge.agent.sd_notify import Notifier
    from edge.messaging.brokers import describe

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
    notifier = Notifier()
    notifier.status(f"starting: device {cfg.device_id}")
    _say(f"device {cfg.device_id}, boot {agent.boot}, broker {describe(cfg.brokers)}")
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
        where = getattr(agent.transport, "broker", None) or describe(cfg.brokers)
        _say(f"broker {where}: {why}; retrying in the background")
    # READY once the model (if any) is verified and served and the broker answered or the
    # first 5 s passed: an agent serves locally and queues reports while its broker is
    # away, so a broker outage must not fail the service's start.
    liveness = Liveness()
    liveness.arm()
    notifier.ready(service_status(agent))
    # Wake up regularly: the OS may deliver SIGTERM to another thread, and CPython only
    # runs the handler when the main thread executes bytecode; an untimed wait can then
    # sleep through it forever (seen once in CI). The watchdog is pinged from this loop,
    # and only while every worker thread lives: a hung or broken agent gets restarted.
    tick = min(0.5, notifier.watchdog / 2) if notifier.watchdog else 0.5
    while not stop.wait(tick):
        dead = liveness.problems()
        if dead:
            notifier.status(f"unhealthy: thread {', '.join(dead)} stopped")
            continue
        notifier.status(service_status(agent))
        if notifier.ping_due():
            notifier.ping()
    _say("stopping")
    notifier.stopping()
    agent.stop(graceful=True)
    notifier.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    from edge.cli.main import main

    sys.exit(main(["agent", "run", *sys.argv[1:]]))
