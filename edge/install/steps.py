"""The deploy state machine: download → verify → self-test → shadow → activate → probation
→ committed, or rolled back / failed with the reason.

Each step is a plain function; :class:`Installer` runs them in order on the agent's install
thread, writes the step to the store's journal *before* doing it, and publishes one Event
per step. Until ``activating`` the served model is untouched, so any failure (or a crash)
before it leaves the device exactly as it was. After it, a failure rolls back to the last
known good model.

Crash safety (the journal says where we were, see :func:`recover`):

* killed before ``activating`` → the candidate is discarded, the old model keeps serving,
  and a ``failed`` event says the install was interrupted at that step;
* killed during ``activating`` or ``probation`` → the new model was never committed, so
  the agent rolls back to the last known good model and reports ``rolled_back``. It does
  not resume probation: a crash during probation may well be the new model's fault.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.bundle import (
    ModelStore,
    Slot,
    check_version,
    extract_bundle,
    verify_directory,
)
from edge.contract import Command, Manifest
from edge.errors import BundleError, EdgekitError, InstallError, SelfTestError
from edge.install.download import download, sha256_file
from edge.install.policy import Policy
from edge.runtime import SelfTestReport, self_test

log = logging.getLogger(__name__)

PAUSE_ENV = "EDGEKIT_TEST_PAUSE_AT"  # test hook: sleep at this step so a test can SIGKILL
PAUSE_SECONDS_ENV = "EDGEKIT_TEST_PAUSE_SECONDS"

Emit = Callable[..., None]  # emit(kind, step, message, *, command, rollout, version, detail)


def pause_for_tests(step: str) -> None:
    """Sleep at ``step`` when EDGEKIT_TEST_PAUSE_AT names it (crash-safety tests)."""
    if os.environ.get(PAUSE_ENV) == step:
        seconds = float(os.environ.get(PAUSE_SECONDS_ENV, "60"))
        log.warning("test hook: pausing %g s at step %s", seconds, step)
        time.sleep(seconds)


# --------------------------------------------------------------------------- steps


def check_command(cmd: Command, now: float, active: Slot | None) -> None:
    """Refuse expired and pointless commands before any byte is downloaded."""
    if cmd.expires is not None and cmd.expires < now:
        raise InstallError("verifying", f"command expired {now - cmd.expires:.0f} s ago")
    if cmd.kind == "deploy" and active is not None and cmd.name in (None, active.name):
        try:
            check_version(int(cmd.version or 0), active.version)
        except BundleError as exc:
            raise InstallError("verifying", str(exc)) from None


def fetch(
    cmd: Command, downloads: Path, policy: Policy, token: str | None, progress: Any = None
) -> Path:
    """Download the command's bundle (resuming a previous partial download of it)."""
    if not cmd.url or not cmd.sha256:
        raise InstallError("downloading", "the deploy command names no url or sha256")
    downloads.mkdir(parents=True, exist_ok=True)
    dest = downloads / f"{cmd.sha256.lower()[:64]}.ekb"
    if dest.exists() and sha256_file(dest) == cmd.sha256.lower():
        return dest
    return download(
        cmd.url,
        dest,
        max_bytes=policy.download_max_bytes,
        timeout=policy.download_timeout,
        token=token,
        expected_size=cmd.size,
        progress=progress,
    )


def verify(
    bundle_file: Path,
    store: ModelStore,
    policy: Policy,
    *,
    sha256: str | None,
    name: str | None,
    version: int | None,
    rollback: bool = False,
) -> tuple[Path, Manifest]:
    """sha256 of the file, then signature, hashes and version; extracts into staging.

    Returns ``(staging dir, manifest)``; the caller turns staging into a slot.
    """
    if sha256 is not None:
        got = sha256_file(bundle_file)
        if got != sha256.lower():
            bundle_file.unlink(missing_ok=True)  # never resume a corrupt file
            raise InstallError("verifying", f"sha256 mismatch: file is {got[:12]}…")
    staging = store.new_staging()
    try:
        manifest = extract_bundle(bundle_file, staging / "bundle", policy.key)
        if version is not None and manifest.version != version:
            raise InstallError(
                "verifying", f"bundle is version {manifest.version}, command says {version}"
            )
        if name is not None and manifest.name != name:
            raise InstallError("verifying", f"bundle is {manifest.name!r}, command says {name!r}")
        active = store.active()
        installed = active.version if active and active.name == manifest.name else None
        check_version(manifest.version, installed, rollback=rollback)
    except BundleError as exc:
        _discard(staging)
        raise InstallError("verifying", str(exc)) from exc
    except BaseException:
        _discard(staging)
        raise
    return staging, manifest


def run_self_test(bundle_dir: Path, manifest: Manifest, policy: Policy) -> SelfTestReport:
    """Run the golden set on every variant; InstallError when none may be served."""
    try:
        return self_test(
            bundle_dir,
            manifest,
            pin_runtime=policy.pin_runtime,
            pin_precision=policy.pin_precision,
            time_budget=policy.selftest_time_budget,
        )
    except SelfTestError as exc:
        raise InstallError("self_test", str(exc)) from exc


# Small samples are noise: one slow call on a busy CPU or one unlucky error must not roll
# back a good model. The error rate is judged once there are PROBATION_MIN_OUTCOMES outcomes
# and only when it is above the limit with ~95 % confidence (Wilson score lower bound);
# latency and confidence need PROBATION_MIN_SAMPLES inferences (or probation_min_inferences
# if larger), and the new model's inferences are never compared with a baseline taken from
# fewer than that many inferences of the old one.
PROBATION_MIN_OUTCOMES = 10
PROBATION_MIN_SAMPLES = 20
ERROR_RATE_Z = 1.645  # one-sided 95 %


def error_rate_lower_bound(errors: int, total: int, z: float = ERROR_RATE_Z) -> float:
    """Wilson score lower bound of the true error rate given ``errors`` of ``total``."""
    if total <= 0:
        return 0.0
    p = errors / total
    z2 = z * z
    centre = p + z2 / (2 * total)
    margin = z * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    return max(0.0, (centre - margin) / (1 + z2 / total))


def probation_samples(policy: Policy) -> int:
    """Inferences needed before latency and confidence are judged."""
    return max(PROBATION_MIN_SAMPLES, policy.probation_min_inferences)


def confidence_baseline(health: dict[str, Any], policy: Policy) -> float | None:
    """The served model's mean confidence, if measured on enough inferences to compare."""
    if health.get("inferences", 0) < probation_samples(policy):
        return None
    conf = health.get("confidence_mean")
    return float(conf) if conf is not None else None


def latency_baseline(
    health: dict[str, Any],
    policy: Policy,
    old_selftest_ms: float | None,
    new_selftest_ms: float | None,
) -> float | None:
    """The p95 latency the new model should show live: its self-test median scaled by how
    the served model's live p95 compared with its own self-test (serving path and device
    load, measured), so a heavier successor is judged by its own speed; None unless the
    served model was measured on enough inferences."""
    if health.get("inferences", 0) < probation_samples(policy):
        return None
    p95 = health.get("p95_ms")
    if not (p95 and old_selftest_ms and new_selftest_ms):
        return None
    return float(new_selftest_ms) * float(p95) / float(old_selftest_ms)


def judge_probation(
    health: dict[str, Any],
    policy: Policy,
    *,
    selftest_latency_ms: float | None,
    baseline_confidence: float | None,
    final: bool,
    baseline_latency_ms: float | None = None,
) -> str | None:
    """Why the new model fails probation, or None. ``final`` is the end of the window.

    Latency is compared like with like when possible: with ``baseline_latency_ms``, the
    new model's self-test scaled by the previous model's live/self-test ratio (see
    :func:`latency_baseline`), else with the new model's self-test median (a bare runtime
    call, so the floor ``probation_min_latency_increase_ms`` absorbs the serving path and
    the load). With no inferences at all only errors (and the fallback, and crashes) can
    fail it.
    """
    inferences, errors = int(health["inferences"]), int(health["errors"])
    total = inferences + errors
    limit = policy.probation_max_error_rate
    if total >= PROBATION_MIN_OUTCOMES and error_rate_lower_bound(errors, total) > limit:
        return f"error rate {errors / total:.3f} above {limit:g} ({errors} of {total})"
    enough = inferences >= probation_samples(policy)
    p95 = health["p95_ms"]
    reference, what = (
        (baseline_latency_ms, "the expected (self-test x the previous model's live/self-test)")
        if baseline_latency_ms
        else (selftest_latency_ms, "the self-test's")
    )
    if enough and reference and p95 is not None:
        ratio = p95 / reference
        increase = p95 - reference
        if (
            ratio > policy.probation_max_latency_ratio
            and increase > policy.probation_min_latency_increase_ms
        ):
            return (
                f"p95 latency {p95:.2f} ms is {ratio:.1f}x {what} "
                f"{reference:.2f} ms (limit {policy.probation_max_latency_ratio:g}x) "
                f"and {increase:.2f} ms slower "
                f"(limit {policy.probation_min_latency_increase_ms:g} ms)"
            )
    conf = health["confidence_mean"]
    drop = baseline_confidence - conf if baseline_confidence is not None and conf else None
    if enough and drop is not None and drop > policy.probation_max_confidence_drop:
        return (
            f"mean confidence {conf:.3f} dropped more than "
            f"{policy.probation_max_confidence_drop:g} below {baseline_confidence:.3f}"
        )
    if final and inferences < policy.probation_min_inferences:
        return (
            f"only {inferences} inferences during probation (min {policy.probation_min_inferences})"
        )
    return None


def recheck_slot(slot: Slot, policy: Policy) -> Manifest:
    """Re-verify an installed slot (at start-up, before a rollback): signature + hashes."""
    try:
        return verify_directory(slot.bundle_dir, policy.key)
    except BundleError as exc:
        raise InstallError("verifying", f"{slot.id} no longer verifies: {exc}") from exc


def _discard(staging: Path) -> None:
    import shutil

    shutil.rmtree(staging, ignore_errors=True)


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """``(step, reason)`` of an exception raised by a step."""
    if isinstance(exc, InstallError):
        return exc.step, str(exc)
    if isinstance(exc, EdgekitError):
        return "failed", str(exc)
    return "failed", f"{type(exc).__name__}: {exc}"
