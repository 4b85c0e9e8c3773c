"""Raw-domain samples (what a caller sends) rebuilt from a bundle's golden model-domain set.

Benchmarks feed the agent what a real caller would, so the preparation path is measured too.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import read_manifest
from edge.contract import Manifest
from edge.errors import BundleError
from edge.runtime import load_golden


def to_raw(x: np.ndarray, manifest: Manifest) -> list[np.ndarray]:
    """Undo the manifest's preprocessing on a model-domain batch."""
    x = np.asarray(x, dtype=np.float32)
    pre: dict[str, Any] = manifest.preprocessing or {}
    if pre.get("kind") == "image":
        x = (x - np.float32(pre.get("offset", 0.0))) / np.float32(pre.get("scale", 1.0))
        lo, hi = pre.get("raw_range", (0.0, 255.0))
        x = np.clip(x, lo, hi)
    elif pre.get("kind") == "tabular":
        x = x * np.asarray(pre["std"], np.float32) + np.asarray(pre["mean"], np.float32)
    return [np.ascontiguousarray(s) for s in x]


def raw_inputs(bundle_dir: Path, manifest: Manifest) -> list[np.ndarray]:
    """Raw samples from an extracted bundle."""
    return to_raw(load_golden(bundle_dir, manifest)["inputs"], manifest)


def archive_raw_inputs(bundle: Path) -> list[np.ndarray]:
    """Raw samples read straight from a bundle archive, without extracting it."""
    manifest = read_manifest(bundle)
    if manifest.golden is None:
        raise BundleError(f"{bundle}: the bundle has no golden set to benchmark with")
    with tarfile.open(bundle) as tar:
        member = tar.extractfile(manifest.golden.entry.file)
        if member is None:
            raise BundleError(f"{bundle}: golden file {manifest.golden.entry.file} is missing")
        golden = np.load(io.BytesIO(member.read()))
    return to_raw(golden["inputs"], manifest)
