"""`edgekit simulate --devices N --broker URL [--broker URL2 ...] [--hub URL --token T]
--trusted-key PUB`.

Devices are spread over a few processes (default: one per core); each process multiplexes
its devices' MQTT sessions on one selector loop (cloud.sim.fleet). Every device has its own
client id, will, retained status, command subscription, telemetry and install flow.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import sys
import threading
import urllib.request
from typing import Any

from edge.contract import check_device_id
from edge.errors import ConfigError, ContractError
from edge.messaging import join_broker_urls, parse_broker_urls
from edge.messaging.brokers import describe


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "simulate", help="run many simulated agents for scale tests", description=__doc__
    )
    p.add_argument("--devices", type=int, required=True, help="how many devices")
    p.add_argument(
        "--broker",
        required=True,
        action="append",
        help="mqtt://HOST:PORT; repeat it (or separate with commas) for a cluster: devices are "
        "spread over the brokers and fail over to the next",
    )
    p.add_argument("--hub", default=None, help="hub URL, checked at start")
    p.add_argument("--token", default=None, help="hub API or device token for downloads")
    p.add_argument("--trusted-key", required=True, help="public key bundles must be signed with")
    p.add_argument(
        "--command-key",
        default=None,
        help="public key (PEM) the hub signs commands with (enrollment's command_key): devices "
        "then refuse unsigned, forged and replayed commands as real agents do",
    )
    p.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    p.add_argument("--prefix", default="sim", help="device ids are PREFIX-00001, ...")
    p.add_argument("--tags", default="sim", help="comma-separated tags reported by devices")
    p.add_argument("--telemetry-interval", type=float, default=10.0)
    p.add_argument("--probation", type=float, default=2.0, help="seconds on probation")
    p.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    p.add_argument("--runtime", default="litert", help="runtime for self-tests and inference")
    p.set_defaults(handler=_run)


def plan(n: int, processes: int, prefix: str) -> list[list[str]]:
    """Device ids dealt round-robin over processes (no empty process)."""
    if n < 1:
        raise ConfigError("--devices must be at least 1")
    if processes < 1:
        raise ConfigError("--processes must be at least 1")
    width = max(5, len(str(n)))
    ids = [f"{prefix}-{i:0{width}d}" for i in range(1, n + 1)]
    try:
        check_device_id(ids[-1])  # the longest; every id shares the prefix
    except ContractError as exc:
        raise ConfigError(f"--prefix {prefix!r}: {exc}") from None
    k = min(processes, n)
    return [ids[i::k] for i in range(k)]


def _brokers(given: list[str]) -> str:
    """The ``--broker`` values (repeated and/or comma-separated) as one checked list."""
    brokers = join_broker_urls(given)
    if any(e.tls for e in parse_broker_urls(brokers)):
        raise ConfigError("--broker: the simulator speaks plain mqtt:// only")
    return brokers


def _run(args: argparse.Namespace) -> int:
    from cloud.sim.fleet import FleetSpec, run_process

    brokers = _brokers(args.broker)

    if not os.path.exists(args.trusted_key):
        raise ConfigError(f"--trusted-key {args.trusted_key}: no such file")
    if args.command_key is not None and not os.path.exists(args.command_key):
        raise ConfigError(f"--command-key {args.command_key}: no such file")
    if args.hub:
        try:
            req = urllib.request.Request(args.hub.rstrip("/") + "/metrics")
            urllib.request.urlopen(req, timeout=5).close()
        except OSError as exc:
            raise ConfigError(f"hub {args.hub} is not reachable: {exc}") from exc
    groups = plan(args.devices, args.processes, args.prefix)
    tags = [t for t in args.tags.split(",") if t]
    ctx = mp.get_context("spawn")
    procs = []
    for ids in groups:
        spec = FleetSpec(
            broker=brokers,
            device_ids=ids,
            trusted_key=args.trusted_key,
            token=args.token,
            telemetry_interval=args.telemetry_interval,
            probation_s=args.probation,
            runtime=args.runtime,
            tags=tags,
            command_key=args.command_key,
        )
        proc = ctx.Process(target=run_process, args=(spec, args.duration), daemon=False)
        proc.start()
        procs.append(proc)
    print(
        f"simulating {args.devices} devices in {len(procs)} processes on "
        f"{describe(parse_broker_urls(brokers))}",
        flush=True,
    )
    stopping = threading.Event()
    # SIGTERM (systemd, a CI runner, kill) stops the children cleanly like Ctrl-C does:
    # without it the parent died alone and left its device sessions running
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        while not stopping.is_set() and any(p.is_alive() for p in procs):
            stopping.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs:
            if p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            p.join(timeout=30)
    failed = [p.exitcode for p in procs if p.exitcode not in (0, -signal.SIGTERM)]
    if failed:
        print(f"error: {len(failed)} simulator process(es) failed: {failed}", file=sys.stderr)
        return 1
    return 0
