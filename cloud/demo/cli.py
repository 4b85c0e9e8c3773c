"""`edgekit demo`: train, sign, ship and watch a fleet, on embedded defaults.

Without --broker an embedded amqtt broker is started on a free port with authentication
on (the hub and every agent log in with their own accounts, checked against the hub's
database); the hub uses SQLite in the work directory; a fresh signing key is generated.
With --exit-when-done the demo stops after the story and exits 0 only if every step
behaved as described.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "demo",
        help="the whole story: train, sign, roll out, catch a bad model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--devices", type=int, default=6, help="agents to start (default 6)")
    p.add_argument("--broker", help="use this MQTT broker instead of the embedded one")
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path(".edgekit-demo"),
        help="where runs, bundles, the hub database and logs go",
    )
    p.add_argument(
        "--exit-when-done",
        action="store_true",
        help="exit after the story (0 only if every step behaved)",
    )
    p.add_argument("--summary-json", type=Path, help="write the summary here")
    p.add_argument("--soak", type=float, default=8.0, help="seconds each wave soaks")
    p.add_argument(
        "--db",
        help="hub database URL (default: SQLite in the work directory), e.g. "
        "postgresql://user@host/db; the demo creates its tables in it",
    )
    p.set_defaults(handler=_run)


def _pct(v: object) -> str:
    return f"{v:.1%}" if isinstance(v, float) else "?"


def _run(args: argparse.Namespace) -> int:
    from cloud.demo.broker import EmbeddedBroker
    from cloud.demo.fleet import DemoError, Fleet, require_broker_url
    from cloud.demo.story import DemoOptions, build_models, run_story, say, write_summary
    from edge.errors import ConfigError

    def on_sigterm(_signum: int, _frame: object) -> None:
        # Unwind like Ctrl-C so the ExitStack stops the hub, the agents and the broker
        # (they run in their own sessions and would outlive a killed demo otherwise).
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, on_sigterm)
    if args.devices < 2:
        raise ConfigError("--devices must be at least 2 (a canary and the rest)")
    started = time.monotonic()
    if args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True)
    with contextlib.ExitStack() as stack:
        workdir = args.workdir.resolve()
        db_url = args.db or f"sqlite:///{workdir / 'hub' / 'hub.db'}"
        if args.broker:
            broker = require_broker_url(args.broker)
            if urlsplit(broker).username is None:
                print(
                    f"warning: {broker} is used without credentials: the hub and the agents "
                    "connect anonymously, and anyone who reaches that broker can forge "
                    "device reports and commands (see docs/hub.md, `edgekit hub broker-config`)"
                )
        else:
            embedded = EmbeddedBroker(db_url=db_url, log_path=workdir / "broker.log")
            broker = stack.enter_context(embedded).url
            print(f"embedded MQTT broker (amqtt) on {broker}, authentication on")
        opts = DemoOptions(
            workdir=args.workdir.resolve(),
            broker=broker,
            devices=args.devices,
            shifted=max(1, args.devices // 3),
            soak=args.soak,
            broker_auth=not args.broker,
        )
        private, public, bundles = build_models(opts)
        fleet = Fleet(opts.workdir, broker, public, db_url=db_url, broker_auth=not args.broker)
        stack.callback(fleet.stop)
        try:
            result = run_story(opts, fleet, bundles, private)
        except DemoError as exc:
            print(f"error: {exc}")
            return 1
        if args.summary_json:
            write_summary(args.summary_json, result)
        say("6. summary")
        for v in result.versions:
            acc = v["accuracy"]
            print(
                f"  {v['name']} v{v['version']}: accuracy "
                + (f"{acc:.3f}" if isinstance(acc, float) else "?")
            )
        for r in result.rollouts:
            print(f"  rollout of v{r['version']}: {r['state']}")
        print(f"  drift alerts: {', '.join(result.drift_alerts) or 'none'}")
        loop = result.loop
        if loop:
            ds = loop.get("dataset") or {}
            print(
                f"  loop: {loop.get('captured')} captured, {loop.get('labeled')} labeled, "
                f"dataset {ds.get('name')} v{ds.get('version')}, retrained v{loop.get('version')}; "
                f"rotated devices' accuracy {_pct(loop.get('accuracy_before'))} -> "
                f"{_pct(loop.get('accuracy_after'))}; champion check: "
                f"{(loop.get('champion') or {}).get('decision')}"
            )
        print(
            f"  story took {time.monotonic() - started:.0f} s; "
            f"{'every step behaved' if result.ok else 'SOME STEPS FAILED'}"
        )
        print(f"\nfleet page: {fleet.hub_url}/   login: admin / {fleet.password}")
        print(f"logs and data: {opts.workdir}")
        if args.exit_when_done:
            return 0 if result.ok else 1
        print("serving until Ctrl-C ...")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    return 0
