"""What a prediction is, and which variant of a bundle to load when the caller pins none.

Variant choice (:func:`choose_artifact`): among artifacts whose runtime is installed here
and that match any given runtime/precision, take the lowest measured
``metrics.latency_ms``; artifacts without a latency come last; ties go to fp32 (more
precise), then to the runtime order litert, onnxruntime, openvino. The agent refines this
on the device by timing the variants itself (edge/runtime/selftest.py).
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any

from edge.contract import PRECISIONS, RUNTIMES, Artifact, Manifest
from edge.errors import BackendError, ConfigError, RuntimeMissingError
from edge.runtime.backends import base

__all__ = ["Prediction", "choose_artifact"]


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
