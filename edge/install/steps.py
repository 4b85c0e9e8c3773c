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
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from edge.bundle import (
    ModelStore,
    Slot,
    check_version,
    extract_bundle,
    verify_directory,
)
from edge.contract import INCOMPATIBLE, Command, Manifest, runnable
from edge.errors import BundleError, EdgekitError, InstallError, SelfTestError
from edge.install.download import download, sha256_file
from edge.install.origins import check_origin
from edge.install.policy import Policy
from edge.runtime import SelfTestReport, describe_device, self_test

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


def check_command(cmd: Command, now: float, store: ModelStore, policy: Policy) -> None:
    """Refuse expired, pointless and downgrading commands before any byte is downloaded.

    A deploy must name its model, come from an allowed origin with a declared size, and be
    newer than every version of that name this device ever committed, whatever model is
    active now (so deploying B and then an old A is a downgrade too).
    """
    if cmd.expires < now:
        raise InstallError("verifying", f"command expired {now - cmd.expires:.0f} s ago")
    if cmd.kind != "deploy":
        return
    if not cmd.name:
        raise InstallError("verifying", "the deploy command names no model")
    check_download(cmd, policy)
    try:
        check_version(int(cmd.version or 0), store.highest_committed(cmd.name))
    except BundleError as exc:
        raise InstallError("verifying", f"{cmd.name}: {exc} (downgrade refused)") from None


def check_download(cmd: Command, policy: Policy) -> None:
    """A download the command may ask for: url from an allowed origin, sha256 and size."""
    if not cmd.url or not cmd.sha256 or cmd.size is None:
        raise InstallError("downloading", "the command names no url, sha256 and size")
    if cmd.size > policy.download_max_bytes:
        raise InstallError(
            "downloading",
            f"bundle of {cmd.size} bytes exceeds the {policy.download_max_bytes} byte limit",
        )
    check_origin(cmd.url, policy.origins)


def rollback_target(cmd: Command, store: ModelStore) -> tuple[str, Slot | None]:
    """``(model name, slot)`` a rollback command may go to; slot None: download it again.

    Only a version of that model this device committed before, older than the active one
    when it is the same model; a bundle downloaded again must be the one committed then.
    """
    active = store.active()
    name = cmd.name or (active.name if active else None)
    if name is None:
        raise InstallError("verifying", "nothing is installed and the rollback names no model")
    version = int(cmd.version or 0)
    committed = store.committed_versions(name)
    if version not in committed:
        raise InstallError(
            "verifying",
            f"{name} version {version} was never committed on this device; "
            "a rollback goes only to a version it ran before",
        )
    if active is not None and active.name == name and version >= active.version:
        raise InstallError(
            "verifying", f"rollback to {name} version {version} is not older than "
            f"the installed version {active.version}",
        )  # fmt: skip
    slot = store.find(name, version)
    if slot is not None:
        return name, slot
    if not cmd.url or not cmd.sha256 or cmd.size is None:
        raise InstallError(
            "verifying", f"{name}-{version} is no longer stored and the command gives no "
            "url, sha256 and size to download it again",
        )  # fmt: skip
    recorded = committed[version]
    if recorded is not None and recorded != cmd.sha256:
        raise InstallError(
            "verifying", f"sha256 {cmd.sha256[:12]}… is not the bundle committed as "
            f"{name}-{version} ({recorded[:12]}…)",
        )  # fmt: skip
    return name, None


def fetch(
    cmd: Command, downloads: Path, policy: Policy, token: str | None, progress: Any = None
) -> Path:
    """Download the command's bundle (resuming a previous partial download of it).

    Only one bundle is ever kept in ``downloads``: anything else there (a refused or
    abandoned download) is deleted first, so refused commands cannot fill the disk.
    """
    check_download(cmd, policy)
    assert cmd.url is not None and cmd.sha256 is not None  # checked above
    downloads.mkdir(parents=True, exist_ok=True)
    dest = downloads / f"{cmd.sha256}.ekb"
    clear_downloads(downloads, keep=(dest.name, dest.name + ".part"))
    if dest.exists():
        if dest.stat().st_size == cmd.size and sha256_file(dest) == cmd.sha256:
            return dest
        dest.unlink()
    return download(
        cmd.url,
        dest,
        max_bytes=policy.download_max_bytes,
        timeout=policy.download_timeout,
        token=token,
        expected_size=cmd.size,
        progress=progress,
    )


def clear_downloads(downloads: Path, keep: tuple[str, ...] = ()) -> None:
    """Delete everything in ``downloads`` but the names in ``keep``."""
    if not downloads.is_dir():
        return
    for child in downloads.iterdir():
        if child.name not in keep:
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)


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
    """sha256 of the file, then signature, hashes, name, version and device class;
    extracts into staging. Returns ``(staging dir, manifest)``; the caller turns staging
    into a slot. A deploy (not ``rollback``, whose target the caller has checked against
    the committed versions) must be newer than every committed version of its name.
    """
    if sha256 is not None:
        got = sha256_file(bundle_file)
        if got != sha256.lower():
            bundle_file.unlink(missing_ok=True)  # never resume a corrupt file
            raise InstallError("verifying", f"sha256 mismatch: file is {got[:12]}…")
    staging = store.new_staging()
    try:
        manifest = extract_bundle(bundle_file, staging / "bundle", policy.key)
        if name is not None and manifest.name != name:
            raise InstallError("verifying", f"bundle is {manifest.name!r}, command says {name!r}")
        if version is not None and manifest.version != version:
            raise InstallError(
                "verifying", f"bundle is version {manifest.version}, command says {version}"
            )
        check_device_class(manifest, policy)
        if not rollback:
            check_version(manifest.version, store.highest_committed(manifest.name))
    except BundleError as exc:
        _discard(staging)
        raise InstallError("verifying", str(exc)) from exc
    except BaseException:
        _discard(staging)
        raise
    return staging, manifest


def check_device_class(
    manifest: Manifest, policy: Policy, capabilities: dict[str, Any] | None = None
) -> None:
    """Refuse a bundle none of whose variants this device may run -- its runtimes, their
    versions, its architecture and free memory (``runnable``, the hub's own check) and its
    pins: software for another class of device, refused before anything is loaded, with
    ``code="incompatible"`` so the hub records the deployment as incompatible, not failed."""
    caps = describe_device() if capabilities is None else capabilities
    pinned = [
        a
        for a in manifest.artifacts
        if policy.pin_runtime in (None, a.runtime) and policy.pin_precision in (None, a.precision)
    ]
    usable, reason = runnable(replace(manifest, artifacts=pinned), caps) if pinned else ([], "")
    if usable:
        return
    runtimes = caps.get("runtimes") or {}
    available = sorted(r for r, info in runtimes.items() if info.get("available"))
    offered = ", ".join(f"{a.runtime}-{a.precision}" for a in manifest.artifacts)
    pins = "/".join(p for p in (policy.pin_runtime, policy.pin_precision) if p)
    if pins and (not pinned or not any(a.runtime in available for a in pinned)):
        reason = (
            f"bundle is for another device class: it offers {offered}; this device runs "
            f"{', '.join(available) or 'no runtime'}" + (f" pinned to {pins}" if pins else "")
        )
    raise InstallError("verifying", reason, code=INCOMPATIBLE)


def run_self_test(bundle_dir: Path, manifest: Manifest, policy: Policy) -> SelfTestReport:
    """Run the golden set on every variant; InstallError when none may be served."""
    try:
        return self_test(
            bundle_dir,
            manifest,
            pin_runtime=policy.pin_runtime,
            pin_precision=policy.pin_precision,
            pin_threads=policy.pin_threads,
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
    shutil.rmtree(staging, ignore_errors=True)


def failure_detail(step: str, reason: str, exc: BaseException) -> dict[str, Any]:
    """The ``detail`` of a ``failed`` event: the step, the reason, and the error's stable
    ``code`` when it has one (``incompatible``: the hub marks the deployment so)."""
    detail: dict[str, Any] = {"failed_step": step, "reason": reason}
    code = exc.code if isinstance(exc, InstallError) else None
    if code:
        detail["code"] = code
    return detail


def describe_failure(exc: BaseException) -> tuple[str, str]:
    """``(step, reason)`` of an exception raised by a step."""
    if isinstance(exc, InstallError):
        return exc.step, str(exc)
    if isinstance(exc, EdgekitError):
        return "failed", str(exc)
    return "failed", f"{type(exc).__name__}: {exc}"
