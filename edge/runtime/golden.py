"""The bundle's golden set: reading it, and judging a variant's scores against it.

One implementation for the agent's self-test (edge/runtime/selftest.py), the start-up re-check of
an installed model (edge/install/installer.py), ``edgekit predict`` users and the fleet simulator
(through :func:`golden_check`, also importable from edge.runtime.predictor).

Each variant is judged against its own tolerance (``Artifact.tolerance``, measured at export
from that variant's own deviation), so a broken fp32 model cannot hide behind the slack an
int8 variant needs. Bundles without one use the shared ``golden.tolerance``; keys missing
from both default to the strict values below: a device must not serve a variant nobody
said how far it may deviate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edge.bundle import entry_path
from edge.contract import Artifact, Manifest
from edge.errors import SelfTestError

if TYPE_CHECKING:
    from edge.runtime.model import Model as Predictor

DEFAULT_MAX_MAE = 0.05
DEFAULT_MIN_TOP1 = 0.95


@dataclass(frozen=True)
class Tolerance:
    """How far a variant's scores may stray from the float model's on the golden set."""

    max_mean_abs_error: float = DEFAULT_MAX_MAE
    min_top1_agreement: float = DEFAULT_MIN_TOP1

    @classmethod
    def of(cls, manifest: Manifest, artifact: Artifact | None = None) -> Tolerance:
        """The tolerance ``artifact`` is judged by: its own, else the bundle's shared one."""
        shared = manifest.golden.tolerance if manifest.golden else {}
        tol = {**shared, **((artifact.tolerance or {}) if artifact is not None else {})}
        return cls(
            tol.get("max_mean_abs_error", DEFAULT_MAX_MAE),
            tol.get("min_top1_agreement", DEFAULT_MIN_TOP1),
        )

    def describe(self, mae: float, top1: float) -> str:
        """Why scores with these numbers are outside (for the self-test's drop reason)."""
        return (
            f"mean abs error {mae:.4g} (max {self.max_mean_abs_error:g}), "
            f"top-1 agreement {top1:.3f} (min {self.min_top1_agreement:g})"
        )

    def allows(self, mae: float, top1: float) -> bool:
        return (
            math.isfinite(mae)
            and mae <= self.max_mean_abs_error
            and (top1 >= self.min_top1_agreement)
        )


def load_golden(bundle_dir: Path, manifest: Manifest) -> dict[str, np.ndarray]:
    """The golden arrays (``inputs``, ``outputs``, maybe ``labels``) of an extracted bundle.

    ``inputs`` (model domain) and ``outputs`` (float model scores) come back as float32.
    SelfTestError when there is no usable golden set.
    """
    if manifest.golden is None:
        raise SelfTestError("bundle has no golden set; it cannot be self-tested")
    path = entry_path(bundle_dir, manifest.golden.entry)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise SelfTestError(f"golden set {path.name} is unreadable: {exc}") from exc
    if "inputs" not in arrays or "outputs" not in arrays:
        raise SelfTestError("golden set needs arrays 'inputs' and 'outputs'")
    try:
        x = np.asarray(arrays["inputs"], dtype=np.float32)
        y = np.asarray(arrays["outputs"], dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise SelfTestError(f"golden set {path.name} is not numeric: {exc}") from exc
    if len(x) == 0 or len(x) != len(y):
        raise SelfTestError(f"golden set has {len(x)} inputs and {len(y)} outputs")
    return {**arrays, "inputs": x, "outputs": y}


def compare(scores: np.ndarray, expected: np.ndarray) -> tuple[float, float]:
    """``(mean absolute error, top-1 agreement)`` of ``scores`` against ``expected``.

    Non-finite scores give ``(inf, 0.0)``; a shape mismatch is a SelfTestError.
    """
    if scores.shape != expected.shape:
        raise SelfTestError(
            f"output shape {list(scores.shape)} differs from the golden {list(expected.shape)}"
        )
    if not np.all(np.isfinite(scores)):
        return math.inf, 0.0
    mae = float(np.mean(np.abs(scores - expected)))
    top1 = float(np.mean(np.argmax(scores, axis=1) == np.argmax(expected, axis=1)))
    return mae, top1


def run_golden(predictor: Predictor, x: np.ndarray) -> np.ndarray:
    """Run the golden inputs one sample at a time, as the agent serves them."""
    return np.concatenate([predictor.infer_model_domain(x[i : i + 1]) for i in range(len(x))])


def golden_check(
    predictor: Predictor,
    golden: dict[str, np.ndarray] | None = None,
    *,
    per_sample: bool = False,
) -> dict[str, float]:
    """Run the golden set on the predictor's variant; SelfTestError if outside tolerance.

    Returns the measured ``mean_abs_error`` and ``top1_agreement`` (and the tolerance's
    limits), so callers can report them. The set runs as one batch (fast, for the fleet
    simulator); ``per_sample`` runs it one sample at a time, as the self-test does, for
    models whose batch dimension is fixed at 1.
    """
    manifest = predictor.manifest
    arrays = golden if golden is not None else load_golden(predictor.bundle_dir, manifest)
    expected = np.asarray(arrays["outputs"], dtype=np.float32)
    x = np.asarray(arrays["inputs"], dtype=np.float32)
    got = run_golden(predictor, x) if per_sample else predictor.infer_model_domain(x)
    target = predictor.artifact.target
    try:
        mae, agree = compare(got, expected)
    except SelfTestError as exc:
        raise SelfTestError(f"{target}: {exc}") from None
    tol = Tolerance.of(manifest, predictor.artifact)
    result = {
        "mean_abs_error": mae,
        "top1_agreement": agree,
        "max_mean_abs_error": tol.max_mean_abs_error,
        "min_top1_agreement": tol.min_top1_agreement,
    }
    if not math.isfinite(mae) or mae > tol.max_mean_abs_error:
        raise SelfTestError(
            f"{target}: golden mean abs error {mae:.4g} exceeds {tol.max_mean_abs_error:g}"
        )
    if agree < tol.min_top1_agreement:
        raise SelfTestError(
            f"{target}: golden top-1 agreement {agree:.3f} is below {tol.min_top1_agreement:g}"
        )
    return result
