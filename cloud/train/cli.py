"""``edgekit train``: argument parsing only; the work lives in :mod:`cloud.train.pipeline`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cloud.data.images import DEFAULT_IMAGE_SIZE, DEFAULT_MAX_BAD_FRACTION
from cloud.train.archs import ARCHS, MOBILENET_DEFAULT_SIZE
from cloud.train.fit import AUTO, DEFAULT_BATCH_SIZE, DEFAULT_EPOCHS, DEFAULT_PATIENCE


def _count_or_auto(text: str) -> int | None:
    """``auto`` -> None (let the epoch budget decide), otherwise a whole number."""
    if text.strip().lower() == AUTO:
        return None
    try:
        return int(text)
    except ValueError as exc:
        msg = f"expected a whole number or 'auto', got {text!r}"
        raise argparse.ArgumentTypeError(msg) from exc


def _column_list(text: str) -> list[str]:
    """``"id, note"`` -> ``["id", "note"]``; an empty name between commas is refused."""
    names = [c.strip() for c in text.split(",")]
    if not text.strip() or any(not n for n in names):
        raise argparse.ArgumentTypeError(f"expected comma-separated column names, got {text!r}")
    return names


def register(subparsers: Any) -> None:
    """Add the ``train`` command (heavy imports happen only when it runs)."""
    p = subparsers.add_parser(
        "train",
        help="train a model on a dataset and write a run directory for `edgekit export`",
        description=(
            "Train a classifier. DATASET is 'digits' (scikit-learn's bundled 8x8 digits), a "
            "folder with one sub-folder of PNG/JPEG images per class, a .csv with a label "
            "column, or an .npz with arrays x and y."
        ),
    )
    p.add_argument("dataset", metavar="DATASET")
    p.add_argument("--out", required=True, type=Path, metavar="RUN_DIR", help="run directory")
    p.add_argument("--label-column", default="label", metavar="COL", help="CSV label column")
    p.add_argument("--arch", default="auto", choices=ARCHS, help="model (auto: cnn/mlp)")
    p.add_argument(
        "--epochs",
        type=_count_or_auto,
        default=None,
        metavar="N|auto",
        help=f"max epochs (default auto: {DEFAULT_EPOCHS} for images, more for small tables "
        "by their row count; early stopping usually ends sooner)",
    )
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, metavar="N")
    p.add_argument(
        "--patience",
        type=_count_or_auto,
        default=None,
        metavar="N|auto",
        help=f"early stopping: epochs without val_loss improvement (default auto: "
        f"{DEFAULT_PATIENCE} for images, a tenth of the epochs for tables)",
    )
    p.add_argument("--learning-rate", type=float, default=1e-3, metavar="LR")
    p.add_argument("--seed", type=int, default=0, metavar="N", help="split and training seed")
    p.add_argument("--name", help="suggested model name (default: from DATASET)")
    p.add_argument(
        "--width-multiplier", type=float, default=1.0, metavar="A", help="mobilenetv2 alpha"
    )
    p.add_argument(
        "--input-size",
        type=int,
        metavar="N",
        help=f"resize images to NxN for the model (mobilenetv2 default "
        f"{MOBILENET_DEFAULT_SIZE}, RGB)",
    )
    p.add_argument(
        "--image-size",
        type=int,
        metavar="N",
        help=f"size image files are decoded to (default {DEFAULT_IMAGE_SIZE})",
    )
    p.add_argument(
        "--max-bad-images",
        type=float,
        default=DEFAULT_MAX_BAD_FRACTION,
        metavar="F",
        help="refuse the folder if more than this share is unreadable",
    )
    p.add_argument(
        "--group-column",
        metavar="COL",
        help="CSV column (or .npz array) naming each row's group, e.g. site or region: kept "
        "out of the features and used for metrics per group in the model card",
    )
    p.add_argument(
        "--exclude-columns",
        type=_column_list,
        default=[],
        metavar="A,B",
        help="comma-separated columns to keep out of the features (ids, notes, leaky columns)",
    )
    p.add_argument(
        "--card-info",
        type=Path,
        metavar="FILE",
        help="model card fields (owners, license, intended uses, ...) as TOML or JSON, "
        "recorded in run.json; `edgekit export --card-info` overrides them",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing run in RUN_DIR")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    import sys

    from cloud.train.pipeline import TrainOptions, run_training

    opts = TrainOptions(
        dataset=args.dataset,
        out=args.out,
        label_column=args.label_column,
        arch=args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        patience=args.patience,
        learning_rate=args.learning_rate,
        seed=args.seed,
        name=args.name,
        width_multiplier=args.width_multiplier,
        input_size=args.input_size,
        image_size=args.image_size,
        max_bad_images=args.max_bad_images,
        force=args.force,
        group_column=args.group_column,
        exclude_columns=args.exclude_columns,
        card_info=args.card_info,
    )
    run_training(opts, stream=None if args.quiet else sys.stdout)
    return 0
