"""On-device self-test: which variants of a bundle work here, and which one is fastest.

Every variant in the manifest is loaded on its real runtime and run on the bundle's golden
set; a variant whose scores differ from the float model's by more than its tolerance
(mean absolute error, top-1 agreement: the variant's own from the manifest, else the
bundle's shared one) is dropped with the numbers. The
survivors are timed on single samples for a bounded time and the fastest is chosen,
unless the configuration pins a runtime and/or precision. Reading the golden set and
comparing scores with it live in edge/runtime/golden.py.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import Manifest, variant_problem
from edge.errors import BackendError, EdgekitError, RuntimeMissingError, SelfTestError
from edge.runtime.device import describe_device
from edge.runtime.golden import Tolerance, compare, load_golden, run_golden
from edge.runtime.predictor import Predictor

log = logging.getLogger(__name__)

MIN_TIMING_RUNS = 5


@dataclass
class VariantResult:
    """What the self-test measured for one variant."""

    runtime: str
    precision: str
    # "ok" | "dropped" | "unavailable" | "skipped" (excluded by the pin) | "incompatible"
    # (its ``requires`` -- runtime version, architecture, memory -- rules this device out)
    status: str
    reason: str | None = None
    mean_abs_error: float | None = None
    top1_agreement: float | None = None
    max_mean_abs_error: float | None = None  # the tolerance this variant was judged by
    min_top1_agreement: float | None = None
    latency_ms: float | None = None  # median single-sample latency
    runs: int = 0

    @property
    def target(self) -> str:
        return f"{self.runtime}-{self.precision}"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class SelfTestReport:
    variants: list[VariantResult] = field(default_factory=list)
    chosen: VariantResult | None = None
    pinned: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "variants": [v.to_dict() for v in self.variants],
            "chosen": self.chosen.target if self.chosen else None,
            "pinned": self.pinned,
        }


def self_test(
    bundle_dir: Path,
    manifest: Manifest,
    *,
    pin_runtime: str | None = None,
    pin_precision: str | None = None,
    time_budget: float = 2.0,
    capabilities: Mapping[str, Any] | None = None,
) -> SelfTestReport:
    """Test every variant the pin allows (all when unpinned) and choose the fastest that
    passes; SelfTestError when none may be served. A variant whose ``requires`` this
    device does not meet (``variant_problem`` on ``capabilities``, by default this
    device's description) is never loaded, so never chosen."""
    caps = describe_device() if capabilities is None else capabilities
    golden = load_golden(bundle_dir, manifest)
    x, expected = golden["inputs"], golden["outputs"]
    report = SelfTestReport(pinned=bool(pin_runtime or pin_precision))
    survivors: list[tuple[VariantResult, Predictor]] = []
    for artifact in manifest.artifacts:
        result = VariantResult(artifact.runtime, artifact.precision, "ok")
        report.variants.append(result)
        if (pin_runtime and artifact.runtime != pin_runtime) or (
            pin_precision and artifact.precision != pin_precision
        ):
            # Never served, so never loaded: a pinned device does not import (or pay the
            # memory of) runtimes it will not use.
            result.status, result.reason = "skipped", "excluded by the configured pin"
            continue
        problem = variant_problem(artifact, caps)
        if problem is not None and _has_runtime(caps, artifact.runtime):  # else: unavailable
            result.status, result.reason = "incompatible", problem
            continue
        try:
            predictor = Predictor.open(bundle_dir, manifest, artifact.runtime, artifact.precision)
        except RuntimeMissingError as exc:
            result.status, result.reason = "unavailable", str(exc)
            continue
        except EdgekitError as exc:
            result.status, result.reason = "dropped", f"does not load: {exc}"
            continue
        try:
            mae, top1 = compare(run_golden(predictor, x), expected)
        except (BackendError, SelfTestError) as exc:
            result.status, result.reason = "dropped", f"fails on the golden set: {exc}"
            predictor.close()
            continue
        result.mean_abs_error, result.top1_agreement = round(mae, 6), round(top1, 4)
        tol = Tolerance.of(manifest, artifact)
        result.max_mean_abs_error = tol.max_mean_abs_error
        result.min_top1_agreement = tol.min_top1_agreement
        if not tol.allows(mae, top1):
            result.status = "dropped"
            result.reason = f"outside tolerance: {tol.describe(mae, top1)}"
            predictor.close()
            continue
        survivors.append((result, predictor))
    try:
        _time_survivors(survivors, x, time_budget)
        report.chosen = _choose(report, survivors, pin_runtime, pin_precision)
    finally:
        for _result, predictor in survivors:
            predictor.close()
    return report


def _has_runtime(capabilities: Mapping[str, Any], runtime: str) -> bool:
    info = (capabilities.get("runtimes") or {}).get(runtime)
    return isinstance(info, Mapping) and bool(info.get("available"))


def _time_survivors(
    survivors: list[tuple[VariantResult, Predictor]], x: np.ndarray, budget: float
) -> None:
    if not survivors:
        return
    share = budget / len(survivors)
    for result, predictor in survivors:
        samples: list[float] = []
        end = time.perf_counter() + share
        i = 0
        while len(samples) < MIN_TIMING_RUNS or time.perf_counter() < end:
            sample = x[i % len(x) : i % len(x) + 1]
            t0 = time.perf_counter()
            predictor.infer_model_domain(sample)
            samples.append((time.perf_counter() - t0) * 1000.0)
            i += 1
            if len(samples) >= 10_000:
                break
        result.latency_ms = round(float(np.median(samples)), 4)
        result.runs = len(samples)


def _choose(
    report: SelfTestReport,
    survivors: list[tuple[VariantResult, Predictor]],
    pin_runtime: str | None,
    pin_precision: str | None,
) -> VariantResult:
    pin = "-".join(p for p in (pin_runtime, pin_precision) if p)
    if not survivors:
        tried = [v for v in report.variants if v.status != "skipped"]
        if pin and not tried:
            has = ", ".join(v.target for v in report.variants)
            raise SelfTestError(f"pinned variant {pin} is not in the bundle (it has: {has})")
        reasons = "; ".join(f"{v.target}: {v.reason}" for v in tried)
        what = f"pinned variant {pin} did not pass" if pin else "no variant passed"
        raise SelfTestError(f"{what} the self-test ({reasons})")
    allowed = [
        r
        for r, _p in survivors
        if (pin_runtime is None or r.runtime == pin_runtime)
        and (pin_precision is None or r.precision == pin_precision)
    ]
    if not allowed:
        ok = ", ".join(r.target for r, _p in survivors)
        raise SelfTestError(f"pinned variant {pin} did not pass the self-test (passed: {ok})")
    return min(allowed, key=lambda r: r.latency_ms if r.latency_ms is not None else float("inf"))
