"""``edgekit bundle inspect|verify|create``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("bundle", help="inspect, verify or create model bundles")
    sub = p.add_subparsers(dest="bundle_command", metavar="ACTION", required=True)

    i = sub.add_parser("inspect", help="show a bundle's manifest (not verified)")
    i.add_argument("bundle", type=Path)
    i.add_argument("--json", action="store_true", help="print the manifest as JSON")
    i.set_defaults(handler=run_inspect)

    v = sub.add_parser("verify", help="check the signature and every file hash")
    v.add_argument("bundle", type=Path)
    v.add_argument("--key", required=True, type=Path, help="trusted public key (PEM)")
    v.set_defaults(handler=run_verify)

    c = sub.add_parser(
        "create",
        help="wrap a model trained elsewhere (.tflite, .onnx, OpenVINO .xml+.bin)",
        description="Bring your own model: read its input/output specs with its runtime, "
        "compute golden outputs by running it, measure latency, and write a signed bundle.",
    )
    c.add_argument(
        "--model",
        required=True,
        action="append",
        type=Path,
        help="model file; repeat for more variants of the same model",
    )
    c.add_argument("--name", required=True)
    c.add_argument("--version", required=True, type=int)
    c.add_argument("--out", required=True, type=Path, help="bundle file to write (.ekb)")
    c.add_argument("--key", required=True, type=Path, help="private signing key")
    c.add_argument("--labels", help="labels file (one per line, or a JSON list) or a,b,c")
    c.add_argument("--golden-inputs", type=Path, help=".npy of model-domain sample inputs")
    c.add_argument(
        "--calibration",
        type=Path,
        help=".npy of representative inputs (drift reference statistics)",
    )
    c.add_argument(
        "--eval-data",
        type=Path,
        help=".npz with x (model-domain) and y (class indices): measure accuracy",
    )
    c.add_argument("--preprocessing", help="preprocessing JSON (inline or a file)")
    c.add_argument(
        "--tolerance",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="golden tolerance, e.g. max_mean_abs_error=0.05 min_top1_agreement=0.9",
    )
    c.add_argument("--threads", type=int, help="inference threads while measuring")
    c.set_defaults(handler=run_create)


def run_inspect(args: argparse.Namespace) -> int:
    from edge.bundle import read_manifest

    manifest = read_manifest(args.bundle)
    if args.json:
        print(json.dumps(manifest.to_dict(), indent=2, sort_keys=True))
        return 0
    print(f"{manifest.name} v{manifest.version}  ({manifest.format}, created {manifest.created})")
    print(
        f"labels:  {', '.join(manifest.labels[:20])}{' ...' if len(manifest.labels) > 20 else ''}"
    )
    for t in manifest.inputs:
        print(f"input:   {t.name} {t.shape} {t.dtype}")
    for t in manifest.outputs:
        print(f"output:  {t.name} {t.shape} {t.dtype}")
    print(f"preprocessing: {manifest.preprocessing.get('kind', 'none')}")
    print("variants:")
    for a in manifest.artifacts:
        acc, lat = a.metrics.get("accuracy"), a.metrics.get("latency_ms")
        acc_s = f"{acc:.4f}" if isinstance(acc, (int, float)) else "-"
        lat_s = f"{lat:.3f} ms" if isinstance(lat, (int, float)) else "-"
        print(f"  {a.target:<18} {a.size:>10} B  accuracy {acc_s:<7} latency {lat_s}")
    if manifest.golden:
        print(f"golden:  {manifest.golden.entry.file} tolerance {manifest.golden.tolerance}")
    sig = manifest.signature or {}
    print(
        f"signed:  {'key ' + sig.get('key_id', '?') if sig else 'NO'} (not verified; "
        "use 'edgekit bundle verify')"
    )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from edge.bundle import key_id, load_public_key, verify_bundle

    manifest = verify_bundle(args.bundle, args.key)
    n = len(manifest.all_entries())
    kid = key_id(load_public_key(args.key))
    print(f"ok: {manifest.name} v{manifest.version}, signature by key {kid}, {n} files verified")
    return 0


def run_create(args: argparse.Namespace) -> int:
    from cloud.byom import create_bundle, parse_labels, parse_tolerance
    from edge.errors import ConfigError

    if args.threads is not None and args.threads < 1:
        raise ConfigError("--threads must be at least 1")
    manifest = create_bundle(
        models=args.model,
        name=args.name,
        version=args.version,
        out=args.out,
        key=args.key,
        labels=parse_labels(args.labels) if args.labels else None,
        golden_inputs=args.golden_inputs,
        calibration=args.calibration,
        eval_data=args.eval_data,
        preprocessing=args.preprocessing,
        tolerance=parse_tolerance(args.tolerance),
        threads=args.threads,
        progress=print,
    )
    targets = ", ".join(a.target for a in manifest.artifacts)
    print(f"wrote {args.out}: {manifest.name} v{manifest.version} ({targets})")
    return 0
