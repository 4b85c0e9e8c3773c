"""``edgekit hub devices list|show|capture``: the fleet as a running hub sees it (REST API),
and its capture policy (``capture`` sends a signed config command, docs/agent.md).

``model`` is what a device reports it runs, never what it was told (docs/hub-api.md).
"""

from __future__ import annotations

import argparse
from typing import Any

from cloud.hub.cli.client import Exit, HubClient, add_api_flags, quote, run

MAX_EVENTS = 5000  # the API's limit


def register(sub: Any) -> None:
    p = sub.add_parser("devices", help="list and inspect the devices of a running hub")
    ds = p.add_subparsers(dest="devices_command", metavar="DEVICES_COMMAND")
    ls = ds.add_parser("list", help="every device: online, model, KPIs")
    ls.add_argument("--tag", help="only devices with this tag")
    ls.add_argument("--model", help="only devices reporting this model name")
    ls.add_argument("--version", type=int, help="only devices reporting this model version")
    ls.add_argument("--online", action="store_true", help="only devices online now")
    add_api_flags(ls)
    ls.set_defaults(handler=lambda a: run(a, _list))
    sh = ds.add_parser("show", help="one device: model, KPIs, drift, capabilities, events")
    sh.add_argument("id")
    sh.add_argument("--events", type=_events, default=10, metavar="N",
                    help="its newest N events (default 10, 0 for none)")  # fmt: skip
    add_api_flags(sh)
    sh.set_defaults(handler=lambda a: run(a, _show))
    cp = ds.add_parser("capture", help="switch a device's capture on or off and tune it")
    cp.add_argument("id")
    onoff = cp.add_mutually_exclusive_group()
    onoff.add_argument("--on", dest="enabled", action="store_const", const=True,
                       help="capture inputs by the policy")  # fmt: skip
    onoff.add_argument("--off", dest="enabled", action="store_const", const=False,
                       help="capture nothing at all")  # fmt: skip
    cp.add_argument("--low-confidence", type=_share, metavar="X",
                    help="keep inputs whose top score is below X (0-1; 0 = never)")  # fmt: skip
    cp.add_argument("--random", type=_share, metavar="X",
                    help="keep this share of all inputs (0-1)")  # fmt: skip
    cp.add_argument("--next", type=_count, metavar="N",
                    help="keep the next N inputs whatever the reason")  # fmt: skip
    add_api_flags(cp)
    cp.set_defaults(handler=lambda a: run(a, _capture))
    p.set_defaults(handler=lambda _a: (p.print_help(), 2)[1])


def _events(raw: str) -> int:
    try:
        n = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a count is a whole number, not {raw!r}") from None
    if not 0 <= n <= MAX_EVENTS:
        raise argparse.ArgumentTypeError(f"--events must be from 0 to {MAX_EVENTS}")
    return n


def _share(raw: str) -> float:
    try:
        x = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a share is a number from 0 to 1, not {raw!r}") from None
    if not 0.0 <= x <= 1.0:
        raise argparse.ArgumentTypeError(f"a share is a number from 0 to 1, not {raw}")
    return x


def _count(raw: str) -> int:
    try:
        n = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a count is a whole number, not {raw!r}") from None
    if not 0 <= n <= 10_000:
        raise argparse.ArgumentTypeError("--next must be from 0 to 10000")
    return n


def _capture(client: HubClient, args: argparse.Namespace) -> Exit:
    from cloud.hub.cli import output as out

    body = {key: value for key, value in (("enabled", args.enabled),
            ("low_confidence", args.low_confidence), ("random", args.random),
            ("next", args.next)) if value is not None}  # fmt: skip
    if not body:
        print("nothing to change: give --on, --off, --low-confidence, --random or --next")
        return Exit.USAGE
    result = client.call("PUT", f"/devices/{quote(args.id)}/capture", body)
    if args.json:
        out.print_json(result)
        return Exit.OK
    policy = result["capture"]["policy"]
    state = {True: "on", False: "off"}.get(policy.get("enabled"), "unchanged")
    print(f"sent {result['command']} to {result['device']}: capture {state}"
          + "".join(f", {k} {v}" for k, v in body.items() if k != "enabled"))  # fmt: skip
    return Exit.OK


def _list(client: HubClient, args: argparse.Namespace) -> Exit:
    from cloud.hub.cli import output as out

    rows = client.get("/devices", tag=args.tag, model=args.model, version=args.version)
    if args.online:
        rows = [d for d in rows if d.get("online")]
    if args.json:
        out.print_json(rows)
        return Exit.OK
    print(out.table(
        ("ID", "ONLINE", "MODEL", "TAGS", "P95 MS", "ERROR RATE", "DRIFT", "AGENT",
         "LAST SEEN"),
        [(d["id"], "yes" if d.get("online") else "no", out.model_ref(d.get("model")),
          ",".join(d.get("tags") or []), out.num((d.get("kpis") or {}).get("p95_latency_ms")),
          out.num((d.get("kpis") or {}).get("error_rate")),
          out.num((d.get("kpis") or {}).get("drift")), d.get("agent_version"),
          out.when(d.get("last_seen"))) for d in rows],
    ))  # fmt: skip
    return Exit.OK


def _show(client: HubClient, args: argparse.Namespace) -> Exit:
    from cloud.hub.cli import output as out

    d = client.get(f"/devices/{quote(args.id)}")
    events = []
    if args.events:
        events = client.get(f"/devices/{quote(args.id)}/events", limit=args.events)
    if args.json:
        out.print_json({**d, "events": events})
        return Exit.OK
    m, k = d.get("model") or {}, d.get("kpis") or {}
    variant = f" ({m.get('runtime')}-{m.get('precision')})" if m.get("runtime") else ""
    print(out.fields([
        ("device", d["id"]),
        ("online", "yes" if d.get("online") else "no"),
        ("enrolled", "yes" if d.get("enrolled") else "no"),
        ("model", out.model_ref(m) + variant),
        ("tags", ",".join(d.get("tags") or []) or "-"),
        ("agent", d.get("agent_version") or "-"),
        ("first seen", out.when(d.get("first_seen"))),
        ("last seen", out.when(d.get("last_seen"))),
        ("p50 / p95 ms", f"{out.num(k.get('p50_latency_ms'))} / "
                         f"{out.num(k.get('p95_latency_ms'))}"),
        ("error rate", out.num(k.get("error_rate"))),
        ("throughput/s", out.num(k.get("throughput_per_s"))),
        ("confidence", out.num(k.get("confidence"))),
        ("accuracy", out.num(k.get("accuracy"))),
        ("drift", out.num(k.get("drift")) + (" ALERT" if k.get("drift_alert") else "")),
        ("inferences", out.num(k.get("inferences_total"), ".0f")),
    ]))  # fmt: skip
    if d.get("drift"):
        print()
        print(out.table(("DRIFTING", "KIND", "PSI", "THRESHOLD", "SINCE"),
                        [(x["name"], x["kind"], out.num(x["psi"]), out.num(x["threshold"]),
                          out.when(x["since"])) for x in d["drift"]]))  # fmt: skip
    if events:
        print()
        print(out.table(("WHEN", "KIND", "STEP", "VERSION", "ROLLOUT", "MESSAGE"),
                        [(out.when(e["ts"]), e["kind"], e.get("step"), e.get("version"),
                          e.get("rollout"), e.get("message") or "") for e in events]))  # fmt: skip
    return Exit.OK
