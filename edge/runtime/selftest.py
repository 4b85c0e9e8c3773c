"""On-device self-test: which variants of a bundle work here, and which one is fastest.

Every variant in the manifest is loaded on its real runtime and run on the bundle's golden
set; a variant whose scores differ from the float model's by more than its tolerance
(mean absolute error, top-1 agreement: the variant's own from the manifest, else the
bundle's shared one) is dropped with the numbers. The
survivors are timed on single samples for a bounded time and the fastest is chosen,
unless the configuration pins a runtime and/or precision. Reading the golden set and
comparing scores with it live in edge/runtime/golden.py.

Threads are part of the variant: each survivor is timed with 1 and 2 threads (up to the
CPUs this process may use; only ``pin_threads`` when that is set), one loaded model at a
time, and the fastest (runtime, precision, threads) is served.
"""

from __future__ import annotations

import logging
import os
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
from edge.runtime.model import Model

log = logging.getLogger(__name__)

MIN_TIMING_RUNS = 5
WARMUP_RUNS = 2  # first calls pay lazy set-up (weight packing, shape compiles)
MAX_THREADS = 2  # beyond 2 threads a small device's other work suffers; 1 is often faster


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
    latency_ms: float | None = None  # median single-sample latency, at ``threads``
    runs: int = 0
    threads: int | None = None  # the fastest thread count (None: the runtime's default)
    latency_by_threads: dict[str, float] | None = None  # {"1": ms, "2": ms}

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
    pin_threads: int | None = None,
    time_budget: float = 2.0,
    capabilities: Mapping[str, Any] | None = None,
) -> SelfTestReport:
    """Test every variant the pin allows (all when unpinned) and choose the fastest that
    passes, with its fastest thread count; SelfTestError when none may be served. A
    variant whose ``requires`` this device does not meet (``variant_problem`` on
    ``capabilities``, by default this device's description) is never loaded, so never
    chosen."""
    caps = describe_device() if capabilities is None else capabilities
    golden = load_golden(bundle_dir, manifest)
    x, expected = golden["inputs"], golden["outputs"]
    report = SelfTestReport(pinned=bool(pin_runtime or pin_precision))
    options = thread_options(pin_threads)
    wanted = [
        a
        for a in manifest.artifacts
        if (not pin_runtime or a.runtime == pin_runtime)
        and (not pin_precision or a.precision == pin_precision)
    ]
    share = time_budget / max(1, len(wanted) * len(options))
    survivors: list[VariantResult] = []
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
            predictor = Model.open(
                bundle_dir, manifest, artifact.runtime, artifact.precision, threads=options[0]
            )
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
        try:
            _time_threads(result, predictor, bundle_dir, manifest, options, x, share)
        except BackendError as exc:
            result.status, result.reason = "dropped", f"fails when timed: {exc}"
            continue
        finally:
            predictor.close()
        survivors.append(result)
    report.chosen = _choose(report, survivors, pin_runtime, pin_precision)
    return report


def thread_options(pin: int | None = None) -> list[int]:
    """The thread counts the self-test tries: ``[pin]``, else 1..min(2, usable CPUs)."""
    if pin is not None:
        return [pin]
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cpus = os.cpu_count() or 1
    return list(range(1, max(1, min(MAX_THREADS, cpus)) + 1))


def _has_runtime(capabilities: Mapping[str, Any], runtime: str) -> bool:
    info = (capabilities.get("runtimes") or {}).get(runtime)
    return isinstance(info, Mapping) and bool(info.get("available"))


def _time_threads(
    result: VariantResult,
    first: Model,
    bundle_dir: Path,
    manifest: Manifest,
    options: list[int],
    x: np.ndarray,
    share: float,
) -> None:
    """Time the variant at each thread count (``first`` is loaded with ``options[0]``;
    the others are loaded, timed and closed in turn) and keep the fastest."""
    timings: dict[int, tuple[float, int]] = {options[0]: _time(first, x, share)}
    for threads in options[1:]:
        try:
            model = Model.open(
                bundle_dir, manifest, result.runtime, result.precision, threads=threads
            )
        except EdgekitError as exc:  # the variant works; this thread count does not
            log.warning("%s with %d threads does not load: %s", result.target, threads, exc)
            continue
        try:
            timings[threads] = _time(model, x, share)
        except BackendError as exc:
            log.warning("%s with %d threads fails: %s", result.target, threads, exc)
        finally:
            model.close()
    best = min(timings, key=lambda t: timings[t][0])
    result.threads = best
    result.latency_ms, result.runs = timings[best]
    result.latency_by_threads = {str(t): ms for t, (ms, _n) in sorted(timings.items())}


def _time(model: Model, x: np.ndarray, share: float) -> tuple[float, int]:
    """Median single-sample latency (ms) of ``model.infer`` over ``share`` seconds
    (at least MIN_TIMING_RUNS calls), and how many calls that was."""
    infer = model.infer
    samples = [np.ascontiguousarray(x[i : i + 1], dtype=np.float32) for i in range(len(x))]
    for i in range(WARMUP_RUNS):
        infer(samples[i % len(samples)])
    times: list[float] = []
    clock = time.perf_counter
    end = clock() + share
    i = 0
    while len(times) < MIN_TIMING_RUNS or clock() < end:
        sample = samples[i % len(samples)]
        t0 = clock()
        infer(sample)
        times.append((clock() - t0) * 1000.0)
        i += 1
        if len(times) >= 10_000:
            break
    return round(float(np.median(times)), 4), len(times)


def _choose(
    report: SelfTestReport,
    survivors: list[VariantResult],
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
        for r in survivors
        if (pin_runtime is None or r.runtime == pin_runtime)
        and (pin_precision is None or r.precision == pin_precision)
    ]
    if not allowed:
        ok = ", ".join(r.target for r in survivors)
        raise SelfTestError(f"pinned variant {pin} did not pass the self-test (passed: {ok})")
    return min(allowed, key=lambda r: r.latency_ms if r.latency_ms is not None else float("inf"))
