"""The body of ``POST /api/v1/rollouts`` from ``rollout create`` flags and/or ``--spec FILE``.

Flags override the file key by key. The result is checked with the hub's own parser
(:meth:`RolloutSpec.parse`) before it is sent, so a typo fails in the pipeline with the
same message the hub would give, without a request.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path
from typing import Any

from cloud.hub.cli.client import CliError, Exit

GATES = ("error_rate", "p95_latency_ms", "drift", "accuracy")
OFF = ("off", "none", "null")
MAX_SPEC_BYTES = 1 << 20  # the hub's request body limit


def add_spec_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="model name (or in --spec)")
    p.add_argument("version", nargs="?", type=_version, help="model version (or in --spec)")
    p.add_argument(
        "--spec",
        type=Path,
        metavar="FILE",
        help="the whole rollout spec as JSON or TOML (.toml); flags override it",
    )
    t = p.add_argument_group("target (at least one)")
    t.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="TAG",
        help="devices with this tag (repeatable or comma-separated; all must match)",
    )
    t.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="ID",
        help="a device id (repeatable or comma-separated)",
    )
    t.add_argument("--all", action="store_true", help="every device")
    w = p.add_argument_group("waves and thresholds")
    waves = w.add_mutually_exclusive_group()
    waves.add_argument(
        "--waves", metavar="P,P,..", help="cumulative percentages of the target, e.g. 10,50,100"
    )
    waves.add_argument(
        "--wave-counts", metavar="N,N,..", help="cumulative device counts instead, e.g. 1,5,20"
    )
    w.add_argument("--soak", type=float, metavar="S", help="seconds each wave soaks (gates)")
    w.add_argument(
        "--success-threshold",
        type=float,
        metavar="SHARE",
        help="share of a wave committed before the next (default 1.0)",
    )
    w.add_argument(
        "--error-threshold",
        type=float,
        metavar="SHARE",
        help="share of a wave failed above which --on-error runs (default 0)",
    )
    w.add_argument(
        "--on-error",
        choices=("pause", "rollback"),
        help="what a failed wave or gate does (default pause)",
    )
    w.add_argument(
        "--deploy-timeout",
        type=float,
        metavar="S",
        help="seconds a device may take to deploy (default: the hub's)",
    )
    g = p.add_argument_group("gates")
    g.add_argument(
        "--gate",
        action="append",
        default=[],
        metavar="METRIC=TOL",
        help=f"a gate's tolerance, or METRIC=off ({', '.join(GATES)}; repeatable)",
    )
    g.add_argument("--gate-min-devices", type=int, metavar="N")
    g.add_argument("--gate-min-inferences", type=int, metavar="N")
    g.add_argument(
        "--p95-min-increase-ms",
        type=float,
        metavar="MS",
        help="latency gate floor in ms (default 5)",
    )
    g.add_argument(
        "--manual-approval", action="store_true", help="each wave waits for `rollout approve`"
    )
    sh = p.add_argument_group("shadow (each device runs the candidate beside its model first)")
    sh.add_argument(
        "--shadow-inputs",
        type=int,
        metavar="N",
        help="live inputs each device shadows before activating (default: off)",
    )
    sh.add_argument(
        "--shadow-min-agreement",
        type=float,
        metavar="SHARE",
        help="agreement under which a device fails the wave's gate (default 0)",
    )
    sh.add_argument(
        "--shadow-timeout",
        type=float,
        metavar="S",
        help="seconds a device waits for the shadow inputs (default 120)",
    )
    p.add_argument("--draft", action="store_true",
                   help="create without starting (`rollout resume ID` starts it)")  # fmt: skip


def build_spec(args: argparse.Namespace) -> dict[str, Any]:  # noqa: C901 - one flag per line
    """The request body; CliError(USAGE) for anything the hub would refuse as invalid."""
    spec: dict[str, Any] = load_spec_file(args.spec) if args.spec else {}
    if args.model is not None:
        spec["model"] = args.model
    if args.version is not None:
        spec["version"] = args.version
    target = spec.get("target")
    tags, devices = _names(args.tag), _names(args.device)
    if tags or devices or args.all:
        target = dict(target) if isinstance(target, dict) else {}
        if tags:
            target["tags"] = tags
        if devices:
            target["devices"] = devices
        if args.all:
            target["all"] = True
        spec["target"] = target
    if args.waves:
        spec["waves"] = [int(p) if p.is_integer() else p
                         for p in _numbers(args.waves, "--waves", float)]  # fmt: skip
    if args.wave_counts:
        spec["waves"] = [{"count": n} for n in _numbers(args.wave_counts, "--wave-counts", int)]
    for flag, key in (("soak", "soak_seconds"), ("success_threshold", "success_threshold"),
                      ("error_threshold", "error_threshold"), ("on_error", "error_action"),
                      ("deploy_timeout", "deploy_timeout_s"),
                      ("gate_min_devices", "gate_min_devices"),
                      ("gate_min_inferences", "gate_min_inferences"),
                      ("p95_min_increase_ms", "p95_latency_min_increase_ms")):  # fmt: skip
        if getattr(args, flag) is not None:
            spec[key] = getattr(args, flag)
    if args.gate:
        gates = dict(spec["gates"]) if isinstance(spec.get("gates"), dict) else {}
        gates.update(_gate(g) for g in args.gate)
        spec["gates"] = gates
    if args.manual_approval:
        spec["manual_approval"] = True
    _shadow_flags(spec, args)
    if args.draft:
        spec["start"] = False
    for key in ("model", "version", "target"):
        if key not in spec:
            flag = {"target": "--tag, --device or --all"}.get(key, key.upper())
            raise CliError(f"no {key}: give {flag} (or put it in --spec)", Exit.USAGE)
    validate(spec)
    return spec


def _shadow_flags(spec: dict[str, Any], args: argparse.Namespace) -> None:
    """``--shadow-*`` into ``spec["shadow"]``, over what the spec file says key by key."""
    given = {
        key: value
        for key, value in (
            ("inputs", args.shadow_inputs),
            ("min_agreement", args.shadow_min_agreement),
            ("timeout", args.shadow_timeout),
        )
        if value is not None
    }
    if not given:
        return
    if args.shadow_inputs == 0:  # "--shadow-inputs 0": no shadow run, whatever the file says
        spec["shadow"] = None
        return
    shadow = dict(spec["shadow"]) if isinstance(spec.get("shadow"), dict) else {}
    shadow.update(given)
    if "inputs" not in shadow:
        raise CliError("--shadow-min-agreement and --shadow-timeout need --shadow-inputs N",
                       Exit.USAGE)  # fmt: skip
    spec["shadow"] = shadow


def validate(spec: dict[str, Any]) -> None:
    """The hub's own checks (cloud/hub/rollout/core/spec.py), run here first."""
    from cloud.errors import RolloutError
    from cloud.hub.rollout.core.spec import RolloutSpec

    if "start" in spec and not isinstance(spec["start"], bool):
        raise CliError("invalid spec: 'start' must be true or false", Exit.USAGE)
    try:
        RolloutSpec.parse(spec)
    except RolloutError as exc:
        raise CliError(f"invalid spec: {exc}", Exit.USAGE) from None


def load_spec_file(path: Path) -> dict[str, Any]:
    """A JSON object, or TOML for a ``.toml`` file; one clear line for anything else."""
    try:
        if path.stat().st_size > MAX_SPEC_BYTES:
            raise CliError(f"spec {path} is larger than 1 MiB", Exit.USAGE)
        raw = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read spec {path}: {exc.strerror}", Exit.USAGE) from None
    try:
        if path.suffix.lower() == ".toml":
            obj: Any = tomllib.loads(raw.decode("utf-8"))
        else:
            obj = json.loads(raw)
    except UnicodeDecodeError:
        raise CliError(f"spec {path} is not UTF-8 text", Exit.USAGE) from None
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"spec {path} is not valid TOML: {exc}", Exit.USAGE) from None
    except ValueError as exc:
        raise CliError(f"spec {path} is not valid JSON: {exc}", Exit.USAGE) from None
    if not isinstance(obj, dict):
        raise CliError(f"spec {path} must hold an object (a JSON {{...}} or TOML table)",
                       Exit.USAGE)  # fmt: skip
    return obj


def _version(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a version is a whole number, not {raw!r}") from None


def _names(values: list[str]) -> list[str]:
    return list(dict.fromkeys(v.strip() for raw in values for v in raw.split(",") if v.strip()))


def _numbers(raw: str, flag: str, kind: type) -> list[Any]:
    try:
        return [kind(x) for x in raw.split(",") if x.strip()] or [kind("")]
    except ValueError:
        what = "whole numbers" if kind is int else "numbers"
        raise CliError(f"{flag} takes comma-separated {what}, got {raw!r}", Exit.USAGE) from None


def _gate(raw: str) -> tuple[str, Any]:
    metric, sep, value = raw.partition("=")
    metric = metric.strip()
    if not sep or metric not in GATES:
        raise CliError(f"--gate {raw!r}: use METRIC=TOLERANCE or METRIC=off with METRIC one "
                       f"of {', '.join(GATES)}", Exit.USAGE)  # fmt: skip
    if value.strip().lower() in OFF:
        return metric, None
    try:
        return metric, float(value)
    except ValueError:
        raise CliError(f"--gate {raw!r}: the tolerance must be a number or off",
                       Exit.USAGE) from None  # fmt: skip
