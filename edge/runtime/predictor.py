"""One loaded model variant of an extracted bundle: prepare input, infer, label.

Used by the agent, ``edgekit predict`` and the exporter's evaluation. Variant choice when
the caller does not pin one (``choose_artifact``): among artifacts whose runtime is
installed here and that match any given runtime/precision, take the lowest measured
``metrics.latency_ms``; artifacts without a latency come last; ties go to fp32 (more
precise), then to the runtime order litert, onnxruntime, openvino. The agent refines this
on the device by timing the variants itself.

Tabular inputs pass the range guard (edge/runtime/guard.py) after preparation: ``warn``
(the default) answers with a warning on the prediction, ``refuse`` raises InputError
code ``range``, ``off`` skips it.
"""

from __future__ import annotations

import importlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import entry_path
from edge.contract import PRECISIONS, RUNTIMES, Artifact, Manifest
from edge.errors import (
    BackendError,
    ConfigError,
    ContractError,
    InputError,
    RuntimeMissingError,
)
from edge.runtime.backends import base
from edge.runtime.golden import golden_check, load_golden
from edge.runtime.guard import DEFAULT_GUARD_MARGIN, DEFAULT_GUARD_MODE, FeatureRanges, RangeGuard
from edge.runtime.inputs import prepare

__all__ = ["Prediction", "Predictor", "choose_artifact", "golden_check", "load_golden"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    """The answer for one input; ``warnings`` say why it may not be trustworthy (a feature
    outside its training range, in the guard's ``warn`` mode)."""

    label: str
    index: int
    scores: list[float]
    latency_ms: float
    warnings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "label": self.label,
            "index": self.index,
            "scores": self.scores,
            "latency_ms": self.latency_ms,
        }
        if self.warnings:
            d["warnings"] = list(self.warnings)
        return d


def choose_artifact(
    manifest: Manifest,
    runtime: str | None = None,
    precision: str | None = None,
    available: dict[str, dict[str, Any]] | None = None,
) -> Artifact:
    """The variant to serve; BackendError says why none fits (and what is installed)."""
    if runtime is not None and runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r} (one of {', '.join(RUNTIMES)})")
    if precision is not None and precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r} (one of {', '.join(PRECISIONS)})")
    candidates = [
        a
        for a in manifest.artifacts
        if (runtime is None or a.runtime == runtime)
        and (precision is None or a.precision == precision)
    ]
    if not candidates:
        have = ", ".join(a.target for a in manifest.artifacts)
        want = "-".join(x for x in (runtime or "*", precision or "*"))
        raise BackendError(f"bundle has no {want} variant (it has: {have})")

    def key(a: Artifact) -> tuple[float, int, int]:
        lat = a.metrics.get("latency_ms")
        latency = float(lat) if isinstance(lat, (int, float)) and math.isfinite(lat) else math.inf
        return (latency, PRECISIONS.index(a.precision), RUNTIMES.index(a.runtime))

    # Probe runtimes lazily in preference order: a device serving LiteRT never pays for
    # importing OpenVINO just to learn it is there.
    probed: dict[str, dict[str, Any]] = dict(available or {})
    for artifact in sorted(candidates, key=key):
        if artifact.runtime not in probed:
            probed[artifact.runtime] = _probe(artifact.runtime)
        if probed[artifact.runtime].get("available"):
            return artifact
    reasons = "; ".join(
        f"{rt}: {probed.get(rt, {}).get('reason', 'not available')}"
        for rt in sorted({a.runtime for a in candidates})
    )
    raise RuntimeMissingError(f"no runtime for this bundle is installed here ({reasons})")


def _probe(runtime: str) -> dict[str, Any]:
    """``probe()`` of one runtime module; a missing or broken runtime is reported, not raised."""
    try:
        module = importlib.import_module(base.BACKEND_MODULES[runtime])
        info: dict[str, Any] = module.probe()
        return info
    except RuntimeMissingError as exc:
        return {"available": False, "reason": str(exc)}
    except Exception as exc:  # a broken install must not stop the other runtimes
        return {"available": False, "reason": f"{type(exc).__name__}: {exc}"}


class Predictor:
    """A bundle variant loaded on its runtime. Create with :meth:`open`."""

    def __init__(
        self,
        bundle_dir: Path,
        manifest: Manifest,
        artifact: Artifact,
        backend: base.Backend,
        *,
        input_guard: str = DEFAULT_GUARD_MODE,
        input_guard_margin: float = DEFAULT_GUARD_MARGIN,
    ) -> None:
        self.bundle_dir = bundle_dir
        self.manifest = manifest
        self.artifact = artifact
        self.backend = backend
        n_out = manifest.outputs[0].shape[-1] if manifest.outputs[0].shape else 0
        self.labels = list(manifest.labels) or [f"class_{i}" for i in range(max(n_out, 0))]
        self.guard = self._load_guard(input_guard, input_guard_margin)

    def _load_guard(self, mode: str, margin: float) -> RangeGuard | None:
        """The range guard of a tabular model (None when off, or without ranges); a bundle
        whose reference does not fit is served unguarded, with a log line saying so."""
        RangeGuard.check_settings(mode, margin)
        if mode == "off":
            return None
        try:
            ranges = FeatureRanges.for_bundle(self.bundle_dir, self.manifest)
        except ContractError as exc:
            log.warning("input range guard off for %s: %s", self.manifest.name, exc)
            return None
        return RangeGuard(ranges, mode, margin) if ranges is not None else None

    @classmethod
    def open(
        cls,
        bundle_dir: Path,
        manifest: Manifest,
        runtime: str | None = None,
        precision: str | None = None,
        *,
        threads: int | None = None,
        available: dict[str, dict[str, Any]] | None = None,
        input_guard: str = DEFAULT_GUARD_MODE,
        input_guard_margin: float = DEFAULT_GUARD_MARGIN,
    ) -> Predictor:
        """Load the chosen variant (see module docstring) of an extracted, verified bundle;
        ``input_guard`` (warn, refuse, off) and its margin apply to :meth:`predict_batch`."""
        RangeGuard.check_settings(input_guard, input_guard_margin)  # before loading a model
        artifact = choose_artifact(manifest, runtime, precision, available)
        backend = base.create(artifact.runtime, threads=threads)
        backend.load(entry_path(bundle_dir, artifact.file), artifact)
        return cls(
            Path(bundle_dir),
            manifest,
            artifact,
            backend,
            input_guard=input_guard,
            input_guard_margin=input_guard_margin,
        )

    def infer_model_domain(self, x: np.ndarray) -> np.ndarray:
        """Scores for a model-domain float32 batch (no preprocessing), batch first."""
        scores = self.backend.infer(np.asarray(x, dtype=np.float32))
        if scores.ndim == 1:
            scores = scores[None, :]
        return scores.reshape(scores.shape[0], -1)

    def predict_batch(self, raw: Any) -> list[Prediction]:
        """Predictions for every sample of ``raw`` (edge/runtime/inputs.py says what it takes)."""
        start = time.perf_counter()
        x = prepare(self.manifest, raw)
        flagged = self.guard.outside(x) if self.guard is not None else None
        if flagged is not None and self.guard is not None and self.guard.refuses:
            raise InputError("range", self.guard.describe(x, flagged))
        scores = self.infer_model_domain(x)
        latency = (time.perf_counter() - start) * 1000.0 / max(1, x.shape[0])
        out = []
        for i, row in enumerate(scores):
            idx = int(np.argmax(row))
            label = self.labels[idx] if idx < len(self.labels) else f"class_{idx}"
            warnings: tuple[str, ...] = ()
            if flagged is not None and self.guard is not None and flagged[i].any():
                warnings = (self.guard.describe(x[i : i + 1], flagged[i : i + 1]),)
            out.append(Prediction(label, idx, [float(v) for v in row], round(latency, 4), warnings))
        return out

    def predict(self, raw: Any) -> Prediction:
        """The prediction for one input; ``latency_ms`` covers preparation and inference."""
        preds = self.predict_batch(raw)
        if len(preds) != 1:
            raise InputError("shape", f"expected one sample, got a batch of {len(preds)}")
        return preds[0]

    @property
    def fillable(self) -> bool:
        """Whether the runtime can take a sample written straight into its input tensor
        (LiteRT with a float input; see :meth:`fill_and_infer`)."""
        return bool(getattr(self.backend, "fillable", False))

    def fill_and_infer(self, fill: Callable[[np.ndarray], bool]) -> np.ndarray | None:
        """Scores (batch first) for one sample that ``fill`` writes into the runtime's input
        tensor, saving a copy of the input; None when ``fill`` declined it."""
        scores: np.ndarray | None = self.backend.fill_and_infer(fill)  # type: ignore[attr-defined]
        if scores is None:
            return None
        return scores.reshape(1, -1)

    def cancel(self) -> bool:
        """Interrupt the running inference from another thread (see Backend.cancel)."""
        return self.backend.cancel()

    def describe(self) -> dict[str, Any]:
        return {
            **self.backend.describe(),
            "precision": self.artifact.precision,
            "target": self.artifact.target,
        }

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
