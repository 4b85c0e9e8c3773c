"""``edgekit predict BUNDLE --input FILE``: local inference on one input.

BUNDLE is a ``.ekb`` file (verified and extracted to a temporary directory) or an
already extracted bundle directory, loaded through the public API (``edge.load_model``).
With ``--key`` the signature is checked too; without it only the hashes are, and a warning
says so. ``--json`` reports the variant served, threads included. Tabular inputs pass the
range guard (``--input-guard``, edge/runtime/guard.py): in ``warn`` mode an out-of-range
value is answered with a warning (on stderr, and under ``warnings`` with ``--json``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.contract import PRECISIONS, RUNTIMES
from edge.runtime.guard import DEFAULT_GUARD_MARGIN, DEFAULT_GUARD_MODE, GUARD_MODES


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "predict",
        help="run a bundle's model on one input",
        description="Run a bundle's model on one input (image, .npy, or JSON list/object).",
    )
    p.add_argument("bundle", type=Path, help="bundle file (.ekb) or extracted bundle directory")
    p.add_argument("--input", "-i", required=True, type=Path, help="image, .npy or .json file")
    p.add_argument("--runtime", choices=RUNTIMES, help="pin the runtime (default: fastest)")
    p.add_argument("--precision", choices=PRECISIONS, help="pin the precision")
    p.add_argument("--key", type=Path, help="trusted public key: also verify the signature")
    p.add_argument("--threads", type=int, help="inference threads (default: runtime's choice)")
    p.add_argument("--top", type=int, default=3, help="classes shown without --json")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--input-guard",
        choices=GUARD_MODES,
        default=DEFAULT_GUARD_MODE,
        help="tabular values outside the training range: warn (default), refuse or off",
    )
    p.add_argument(
        "--input-guard-margin",
        type=float,
        default=DEFAULT_GUARD_MARGIN,
        help="how far past the training min/max a value may lie, in training spans "
        f"(default {DEFAULT_GUARD_MARGIN:g})",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from edge.errors import ConfigError
    from edge.runtime import load_input_file, load_model

    if args.threads is not None and args.threads < 1:
        raise ConfigError("--threads must be at least 1")
    if args.key is None:
        print(
            "warning: no --key given; the bundle's signature is NOT checked (hashes are)",
            file=sys.stderr,
        )
    raw = load_input_file(args.input)
    with (
        _quiet_unverified(),
        load_model(
            args.bundle,
            args.key,
            runtime=args.runtime,
            precision=args.precision,
            threads=args.threads,
            input_guard=args.input_guard,
            input_guard_margin=args.input_guard_margin,
        ) as model,
    ):
        pred = model.predict(raw)
        info = model.describe()
    manifest, variant = model.manifest, model.variant
    result = {
        "label": pred.label,
        "index": pred.index,
        "scores": pred.scores,
        "scores_by_label": dict(zip(model.labels, pred.scores, strict=False)),
        "latency_ms": pred.latency_ms,
        "runtime": variant.runtime,
        "precision": variant.precision,
        "threads": variant.threads,
        "recipe": variant.recipe,
        "runtime_version": info.get("version"),
        "name": manifest.name,
        "version": manifest.version,
        "signature_verified": args.key is not None,
        "warnings": list(pred.warnings),
    }
    for warning in pred.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
        return 0
    threads = f", {variant.threads} thread{'s' if variant.threads != 1 else ''}"
    print(
        f"{pred.label}  ({manifest.name} v{manifest.version}, {variant.target}"
        f"{threads if variant.threads else ''}, {pred.latency_ms:.2f} ms)"
    )
    ranked = sorted(zip(model.labels, pred.scores, strict=False), key=lambda t: -t[1])
    for label, score in ranked[: max(args.top, 0)]:
        print(f"  {label:>16}  {score:.4f}")
    return 0


@contextlib.contextmanager
def _quiet_unverified() -> Iterator[None]:
    """The command prints its own line about a missing --key (naming the flag); the
    library's warning and log line for it would only repeat it."""
    from edge.runtime import UnverifiedBundleWarning

    logger = logging.getLogger("edge.runtime.model")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UnverifiedBundleWarning)
            yield
    finally:
        logger.setLevel(level)
