"""Writing the training run directory that ``edgekit export`` reads (interfaces.md)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from edge import __version__
from edge.errors import ConfigError

RUN_FILES = ("model.keras", "data.npz", "reference.json", "run.json", "report.md")
GROUP_PREFIX = "group_"  # data.npz arrays group_train/val/test: one group name per row
SPLIT_NAMES = ("train", "val", "test")
COMPRESS_ABOVE_BYTES = 64 << 20  # large (upsampled) image sets compress well; small ones load fast


def check_run_dir(path: Path, force: bool) -> None:
    """Refuse to overwrite an earlier run unless ``force`` (checked before any slow work)."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {path} exists and is not a directory")
    if (path / "run.json").exists() and not force:
        raise ConfigError(
            f"{path} already holds a training run; pass --force or choose another --out"
        )


def prepare_run_dir(path: Path, force: bool) -> None:
    """Create ``path`` (after :func:`check_run_dir`); an overwritten run loses run.json first."""
    check_run_dir(path, force)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create --out {path}: {exc.strerror or exc}") from exc
    if force:
        (path / "run.json").unlink(missing_ok=True)  # the run is complete only once rewritten


def code_version() -> str:
    """The package version plus the git commit when running from a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return f"{__version__}+g{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        return __version__


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (temp file + rename), so readers never see half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """data.npz with model-domain float32 x and int64 y for each split."""
    tmp = path.with_name(path.stem + ".tmp.npz")
    total = sum(a.nbytes for a in arrays.values())
    if total > COMPRESS_ABOVE_BYTES:
        np.savez_compressed(tmp, **arrays)  # type: ignore[arg-type]
    else:
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, path)


def group_arrays(groups: np.ndarray, splits: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``group_<split>`` unicode arrays aligned row for row with ``x_<split>``/``y_<split>``.

    Stored beside the splits (not in them) so the model never sees the group and the
    exporter can compute metrics per group; unicode arrays load without pickle.
    """
    return {
        f"{GROUP_PREFIX}{name}": np.asarray(groups[splits[name]], dtype=np.str_)
        for name in SPLIT_NAMES
    }


def groups_info(column: str, groups: np.ndarray, splits: dict[str, np.ndarray]) -> dict[str, Any]:
    """run.json ``groups``: the column name, the group names and rows per group per split."""
    counts = {}
    for name in SPLIT_NAMES:
        uniq, n = np.unique(groups[splits[name]], return_counts=True)
        counts[name] = {str(g): int(c) for g, c in zip(uniq, n, strict=True)}
    return {
        "column": column,
        "values": sorted({str(g) for g in np.unique(groups)}),
        "counts": counts,
    }
