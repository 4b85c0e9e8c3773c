"""``edgekit hub rollout create|list|show|pause|resume|abort|rollback|retry|approve``.

Against a running hub's REST API (``--hub``/``--token`` or ``EDGEKIT_HUB``/``EDGEKIT_TOKEN``),
so a CI/CD pipeline starts a rollout and learns how it ended from the exit code
(:class:`cloud.hub.cli.client.Exit`) instead of speaking raw HTTP.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cloud.hub.cli.client import Exit, HubClient, add_api_flags, quote, run
from cloud.hub.cli.rollout_spec import add_spec_flags, build_spec

ACTIONS = {
    "pause": "stop sending new waves (devices keep what they run)",
    "resume": "continue a paused rollout, or start a draft",
    "abort": "stop for good (devices keep what they run)",
    "rollback": "send every device this rollout updated back to its previous version",
    "retry": "deploy again to the devices that failed",
    "approve": "let the next wave start (--manual-approval)",
}
STATES = ("draft", "running", "paused", "completed", "aborted", "rolled_back")
DEFAULT_TIMEOUT_S = 3600.0


def register(sub: Any) -> None:
    p = sub.add_parser("rollout", help="create, watch and steer rollouts on a running hub")
    rs = p.add_subparsers(dest="rollout_command", metavar="ROLLOUT_COMMAND")

    c = rs.add_parser("create", help="start a rollout (exit 0/1/4/5 with --wait)")
    add_spec_flags(c)
    c.add_argument("--force", action="store_true",
                   help="roll out even when the champion check finds the version clearly "
                   "worse than what the target devices run (recorded in the audit log)",
                   )  # fmt: skip
    add_api_flags(c)
    _wait_flags(c)
    c.set_defaults(handler=lambda a: run(a, _create))

    ls = rs.add_parser("list", help="rollouts, newest first")
    ls.add_argument("--state", choices=STATES, help="only rollouts in this state")
    add_api_flags(ls)
    ls.set_defaults(handler=lambda a: run(a, _list))

    sh = rs.add_parser(
        "show", help="one rollout: waves, gates, champion check, devices and their reasons"
    )
    sh.add_argument("id")
    add_api_flags(sh)
    _wait_flags(sh)
    sh.set_defaults(handler=lambda a: run(a, _show))

    for action, what in ACTIONS.items():
        ap = rs.add_parser(action, help=what)
        ap.add_argument("id")
        add_api_flags(ap)
        ap.set_defaults(handler=lambda a, act=action: run(a, lambda c, x: _act(c, x, act)))
    p.set_defaults(handler=lambda _a: (p.print_help(), 2)[1])


def _wait_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true",
                   help="block until the rollout completes (0), is rolled back or aborted (1) "
                   "or pauses (5); progress on a terminal")  # fmt: skip
    p.add_argument("--timeout", type=_seconds, default=DEFAULT_TIMEOUT_S, metavar="S",
                   help="with --wait: give up after S seconds, exit 4 "
                   f"(default {DEFAULT_TIMEOUT_S:g})")  # fmt: skip
    p.add_argument("--poll", type=_seconds, default=0.5, metavar="S",
                   help="with --wait: first poll interval; backs off to 10 s while nothing "
                   "changes (default 0.5)")  # fmt: skip


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seconds must be a number, not {raw!r}") from None
    if not 0 < value <= 30 * 86400:  # refuses nan and inf too
        raise argparse.ArgumentTypeError("seconds must be more than 0 and at most 30 days")
    return value


def _create(client: HubClient, args: argparse.Namespace) -> Exit:
    body = build_spec(args)
    if args.force:
        body["force"] = True
    made = client.post("/rollouts", body)
    rid = str(made["id"])
    if not args.json:
        print(f"rollout {rid} created ({made['state']})", file=sys.stderr if args.wait else None)
    if args.wait:
        return _wait_and_print(client, rid, args)
    r = client.get(f"/rollouts/{quote(rid)}")
    if args.json:
        _out().print_json(r)
    else:
        print(rid)  # last line: RID=$(edgekit hub rollout create ... | tail -n1)
    return Exit.OK


def _list(client: HubClient, args: argparse.Namespace) -> Exit:
    rows = client.get("/rollouts", state=args.state)
    out = _out()
    if args.json:
        out.print_json(rows)
        return Exit.OK
    print(out.table(
        ("ID", "STATE", "MODEL", "WAVE", "COMMITTED", "FAILED", "TARGET", "WAITING FOR",
         "CREATED"),
        [(r["id"], r["state"], f"{r['model']} v{r['version']}", _wave(r), r["committed"],
          r["failed"], r["target_size"], r["waiting_for"], out.when(r["created"]))
         for r in rows],
    ))  # fmt: skip
    return Exit.OK


def _show(client: HubClient, args: argparse.Namespace) -> Exit:
    if args.wait:
        return _wait_and_print(client, args.id, args)
    r = client.get(f"/rollouts/{quote(args.id)}")
    _print_rollout(r, args.json)
    return Exit.OK


def _act(client: HubClient, args: argparse.Namespace, action: str) -> Exit:
    r = client.post(f"/rollouts/{quote(args.id)}/{action}")
    if args.json:
        _out().print_json(r)
    else:
        print(f"rollout {r['id']}: {action} done, now {r['state']}")
    return Exit.OK


def _wait_and_print(client: HubClient, rid: str, args: argparse.Namespace) -> Exit:
    from cloud.hub.cli.rollout_wait import wait

    r, code = wait(client, rid, args.timeout, interval=args.poll)
    _print_rollout(r, args.json)
    if not args.json:
        print(_verdict(r, code), file=sys.stderr)
    return code


def _verdict(r: dict[str, Any], code: Exit) -> str:
    if code is Exit.TIMEOUT:
        return f"timed out: rollout {r['id']} is still {r['state']}"
    last = (r.get("audit") or [{}])[-1]
    why = f": {last['reason']}" if last.get("reason") else ""
    return f"rollout {r['id']} {r['state']}{why}"


def _wave(r: dict[str, Any]) -> str:
    waves = r.get("waves") or []
    return f"{int(r.get('current_wave') or 0) + 1}/{len(waves)}" if waves else "-"


def _target(spec: dict[str, Any]) -> str:
    t = spec.get("target") or {}
    parts = []
    if t.get("all"):
        parts.append("all devices")
    if t.get("tags"):
        parts.append("tags " + ",".join(t["tags"]))
    if t.get("devices"):
        parts.append("devices " + ",".join(t["devices"]))
    return "; ".join(parts) or "-"


def _print_rollout(r: dict[str, Any], as_json: bool) -> None:
    out = _out()
    if as_json:
        out.print_json(r)
        return
    spec = r.get("spec") or {}
    print(out.fields([
        ("rollout", r["id"]),
        ("model", f"{r['model']} v{r['version']}"),
        ("state", r["state"] + (f" (waiting for {r['waiting_for']})" if r.get("waiting_for")
                                else "")),
        ("wave", _wave(r)),
        ("target", f"{_target(spec)} ({r['target_size']} devices)"),
        ("devices", f"{r['committed']} committed, {r['failed']} failed"
                    + (f", {r['incompatible']} incompatible" if r.get("incompatible") else "")),
        ("on error", f"{spec.get('error_action', '-')}, soak {spec.get('soak_seconds', 0):g} s"),
        ("created", out.when(r["created"])),
        ("updated", out.when(r["updated"])),
    ]))  # fmt: skip
    if r.get("champion"):
        print()
        print(out.fields(champion_fields(r["champion"])))
    print()
    print(out.table(
        ("WAVE", "UP TO", "SIZE", "DEVICES", "COMMITTED", "PENDING", "FAILED", "INCOMPATIBLE",
         "FINISHED"),
        [(w["index"] + 1, _wave_size(w["wave"]), w["size"], w["devices"], w["committed"],
          w["pending"], w["failed"], w.get("incompatible", 0), out.when(w["finished"]))
         for w in r.get("waves", [])],
    ))  # fmt: skip
    if r.get("gates"):
        print()
        print(out.table(
            ("GATE", "VALUE", "BASELINE", "LIMIT", "DEVICES", "INFERENCES", "OK"),
            [(g["metric"], out.num(g.get("value")), out.num(g.get("baseline")),
              out.num(g.get("threshold")), g.get("devices"), g.get("inferences"),
              _ok(g)) for g in r["gates"]],
        ))  # fmt: skip
    print()
    if spec.get("shadow"):
        print(out.table(
            ("DEVICE", "WAVE", "STATUS", "FROM", "AGREEMENT", "CANDIDATE P50/P95 MS", "REASON"),
            [(d["device"], d["wave"] + 1, d["status"], out.model_ref(d.get("from")),
              *_shadow_cells(d.get("shadow")), d.get("reason") or "")
             for d in r.get("deployments", [])],
        ))  # fmt: skip
    else:
        print(out.table(
            ("DEVICE", "WAVE", "STATUS", "FROM", "REASON"),
            [(d["device"], d["wave"] + 1, d["status"], out.model_ref(d.get("from")),
              d.get("reason") or "") for d in r.get("deployments", [])],
        ))  # fmt: skip
    if r.get("audit"):
        print()
        print(out.table(
            ("WHEN", "FROM", "TO", "ACTION", "BY", "REASON"),
            [(out.when(a["ts"]), a["from"], a["to"], a["action"], a.get("actor"),
              a.get("reason") or "") for a in r["audit"]],
        ))  # fmt: skip


def champion_fields(c: dict[str, Any]) -> list[tuple[str, str]]:
    """The champion check the rollout was created with (docs/hub-api.md, "Champion
    check"): the decision and who forced it, both versions' field accuracy with its 95 %
    interval on the same samples, and their test accuracy."""
    cand = c.get("candidate") or {}
    champ = c.get("champion") or {}
    decision = str(c.get("decision", "-"))
    if c.get("forced"):
        decision += f", FORCED by {c.get('actor') or 'an unknown user'}"
    rows = [("champion check", decision)]
    if champ:
        rows.append(("against", f"{champ.get('name')} v{champ.get('version')} (champion)"))
    rows.append(("reason", str(c.get("reason") or "-")))
    f = c.get("field") or {}
    n = f.get("n") or 0
    if n:
        devices = ", ".join(f"{d} {k}" for d, k in (f.get("by_device") or {}).items())
        skipped = f.get("skipped") or 0
        rows.append(("field samples", f"{n}" + (f" ({devices})" if devices else "")
                     + (f", {skipped} skipped" if skipped else "")))  # fmt: skip
        rows.append((f"candidate v{cand.get('version')}", _accuracy(f.get("candidate"))))
        rows.append((f"champion v{champ.get('version')}", _accuracy(f.get("champion"))))
        rows.append(("agreement", _accuracy(f.get("agreement"))))
    else:
        rows.append(("field samples", "0 (decided on the bundles' test accuracy)"))
    if c.get("excluded"):
        rows.append(("excluded", f"{c['excluded']} samples the candidate was trained on"))
    tests = [f"{who} {_pct(side.get('test_accuracy'))}"
             for who, side in (("candidate", cand), ("champion", champ)) if side]  # fmt: skip
    rows.append(("test accuracy", ", ".join(tests) or "-"))
    for err in c.get("errors") or []:
        rows.append(("not run", str(err)))
    return rows


def _accuracy(p: dict[str, Any] | None) -> str:
    """``96.0 % [92.1 %, 98.0 %] (230/240)``: the share with its Wilson 95 % interval."""
    if not p or p.get("value") is None:
        return "-"
    return (f"{_pct(p['value'])} [{_pct(p.get('low'))}, {_pct(p.get('high'))}] "
            f"({p.get('correct')}/{p.get('n')})")  # fmt: skip


def _pct(v: Any) -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "-"
    return f"{v * 100:.1f} %"


def _shadow_cells(s: dict[str, Any] | None) -> tuple[str, str]:
    """A deployment's shadow run: agreement over its inputs, the candidate's latency."""
    if not s:
        return "-", "-"
    agreement = s.get("agreement")
    share = f"{agreement:.1%} of {s.get('inputs')}" if agreement is not None else "no inputs"
    lat = s.get("candidate_latency_ms") or {}
    ms = "/".join(f"{v:.3g}" for k in ("p50", "p95") if (v := lat.get(k)) is not None)
    return share, ms or "-"


def _wave_size(wave: Any) -> str:
    return f"{wave['count']} devices" if isinstance(wave, dict) else f"{wave:g} %"


def _ok(g: dict[str, Any]) -> str:
    if g.get("waiting"):
        return "waiting"
    return {True: "ok", False: "FAIL"}.get(g.get("ok"), "-")  # type: ignore[arg-type]


def _out() -> Any:
    """Imported when printing, so `edgekit hub serve` never needs the table library."""
    from cloud.hub.cli import output

    return output
