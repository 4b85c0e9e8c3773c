"""``edgekit export RUN_DIR --out BUNDLE --name NAME --version N --key KEY [...]``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cloud.export import TARGETS
from cloud.export.gate import (
    DEFAULT_MAX_ACCURACY_DROP,
    DEFAULT_MIN_AGREEMENT,
    DEFAULT_MIN_CLASS_AGREEMENT,
)
from cloud.export.golden import DEFAULT_GOLDEN_SIZE
from cloud.export.quantize import DEFAULT_CALIBRATION_SAMPLES
from cloud.export.stats import DEFAULT_CONFIDENCE


def register(subparsers: Any) -> None:
    """Add the ``export`` command (heavy imports happen in the handler)."""
    p = subparsers.add_parser(
        "export",
        help="convert, quantise, evaluate and gate a trained run; write a signed bundle",
        description=(
            "Export a training run (from `edgekit train`) to LiteRT, ONNX Runtime and "
            "OpenVINO in fp32 and int8, evaluate every variant on the held-out test split "
            "with its real runtime, leave out variants that are significantly worse than the "
            "float model (accuracy, agreement, per-class agreement, with intervals), and "
            "write a signed bundle with a golden self-test set, a model card and report.json."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="training run directory")
    p.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="BUNDLE_FILE",
        help="bundle file to write (conventionally NAME-vN.ekb)",
    )
    p.add_argument("--name", required=True, help="model name in the manifest")
    p.add_argument(
        "--version",
        type=int,
        required=True,
        metavar="N",
        help="model version, an integer >= 1 that increases with every release",
    )
    p.add_argument(
        "--targets",
        default=",".join(TARGETS),
        metavar="LIST",
        help=f"comma-separated subset of: {', '.join(TARGETS)}",
    )
    p.add_argument(
        "--key",
        type=Path,
        metavar="PRIVATE_KEY",
        help="Ed25519 private key (edgekit.key from `edgekit keys generate`)",
    )
    p.add_argument(
        "--max-accuracy-drop",
        type=float,
        default=None,
        metavar="POINTS",
        help="leave out variants whose test accuracy is more than POINTS percentage points "
        "below the float model's (the estimate, and significantly). Unset: only a drop "
        f"significantly above {DEFAULT_MAX_ACCURACY_DROP:g} point leaves a variant out",
    )
    p.add_argument(
        "--min-agreement",
        type=float,
        default=DEFAULT_MIN_AGREEMENT,
        metavar="FRACTION",
        help="leave out variants whose top-1 agreement with the float model, on all "
        "train/val/test inputs, is significantly below FRACTION",
    )
    p.add_argument(
        "--min-class-agreement",
        type=float,
        default=DEFAULT_MIN_CLASS_AGREEMENT,
        metavar="FRACTION",
        help="the same for each class (inputs the float model assigns to it)",
    )
    p.add_argument(
        "--gate-confidence",
        type=float,
        default=DEFAULT_CONFIDENCE,
        metavar="LEVEL",
        help="confidence level of the gate's intervals, in (0.5, 0.9999]",
    )
    p.add_argument(
        "--golden-size",
        type=int,
        default=DEFAULT_GOLDEN_SIZE,
        metavar="N",
        help="test samples in the on-device self-test set",
    )
    p.add_argument(
        "--calibration-samples",
        type=int,
        default=DEFAULT_CALIBRATION_SAMPLES,
        metavar="N",
        help="training samples used to calibrate int8 quantisation",
    )
    p.add_argument("--seed", type=int, default=0, help="seed for the calibration subset")
    p.add_argument(
        "--card-info",
        type=Path,
        metavar="FILE",
        help="model card fields (owners, license, intended and out-of-scope uses, "
        "limitations, contact, citation) as TOML or JSON; overrides `edgekit train "
        "--card-info` (see docs/model-card.md)",
    )
    p.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from cloud.export.pipeline import ExportOptions, export

    opts = ExportOptions(
        run_dir=args.run_dir,
        out=args.out,
        name=args.name,
        version=args.version,
        key=args.key,
        targets=args.targets.split(","),
        max_accuracy_drop=args.max_accuracy_drop,
        min_agreement=args.min_agreement,
        min_class_agreement=args.min_class_agreement,
        gate_confidence=args.gate_confidence,
        golden_size=args.golden_size,
        calibration_samples=args.calibration_samples,
        seed=args.seed,
        card_info=args.card_info,
    )
    result = export(opts)
    print(_table(result.report["variants"]))
    return 0


def _table(rows: list[dict[str, Any]]) -> str:
    """The variant table as aligned text for the terminal."""

    def fmt(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    head = (
        f"{'target':<18} {'acc %':>7} {'agree %':>8} {'KiB':>9} {'p50 ms':>8} "
        f"{'p95 ms':>8} {'speed-up':>8}  status"
    )
    lines = [head]
    for r in rows:
        acc = None if r["accuracy"] is None else 100 * r["accuracy"]
        agreement = r.get("agreement_all", r["agreement"])  # on all inputs, as gated
        agree = None if agreement is None else 100 * agreement
        size = None if r["size"] is None else r["size"] / 1024
        status = "kept" if r["included"] else f"left out: {r['reason']}"
        lines.append(
            f"{r['target']:<18} {fmt(acc, '7.2f')} {fmt(agree, '8.2f')} {fmt(size, '9.1f')} "
            f"{fmt(r['latency_ms'], '8.3f')} {fmt(r['latency_p95_ms'], '8.3f')} "
            f"{fmt(r['speedup_vs_fp32'], '8.2f')}  {status}"
        )
    return "\n".join(lines)
