"""Runs the deploy state machine of edge/install/steps.py against the live agent.

:class:`Installer` owns one background thread: deploy and rollback commands, error-rate
fallbacks and the start-up recovery all run there, one at a time, while the inference
thread keeps serving. See edge/install/steps.py for the steps and the crash-safety rules, and
edge/install/recovery.py for how an installed model is re-verified before it serves again.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.bundle import ModelStore, Slot, read_manifest
from edge.contract import Command, Manifest, ShadowSettings
from edge.errors import EdgekitError, InstallError
from edge.install.download import sha256_file
from edge.install.keys import apply_keys
from edge.install.policy import Policy
from edge.install.recovery import open_verified, recover, self_test_and_open
from edge.install.steps import (
    Emit,
    check_command,
    clear_downloads,
    confidence_baseline,
    describe_failure,
    failure_detail,
    fetch,
    judge_probation,
    latency_baseline,
    pause_for_tests,
    rollback_target,
    verify,
)
from edge.serving import LoadedModel, ModelServer

log = logging.getLogger(__name__)

PROBATION_TICK = 0.25
# ``detail.code`` of a deploy refused because its shadow run disagreed too often
SHADOW_DISAGREEMENT = "shadow_disagreement"


class Installer:
    """Installs, rolls back and falls back; every public method queues work."""

    def __init__(
        self,
        store: ModelStore,
        server: ModelServer,
        policy: Policy,
        emit: Emit,
        downloads: Path,
        token: Callable[[], str | None] = lambda: None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.server = server
        self.policy = policy
        self.emit = emit
        self.downloads = downloads
        self.token = token
        self.on_change = on_change  # the served model changed: republish status
        self.busy = threading.Event()
        self._jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._fallback = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="installer", daemon=True)

    # ------------------------------------------------------------------ thread

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._jobs.put(None)
        self._thread.join(timeout=5)

    def submit(self, job: Callable[[], None]) -> None:
        self._jobs.put(job)

    def wait_idle(self, timeout: float) -> bool:
        """True once every queued job has finished (tests, provisioning)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._jobs.unfinished_tasks == 0:
                return True
            time.sleep(0.02)
        return False

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            self.busy.set()
            try:
                job()
            except Exception:
                log.exception("install job failed unexpectedly")
            finally:
                self.busy.clear()
                self._jobs.task_done()
        self._jobs.task_done()

    def request_fallback(self, model: LoadedModel, rate: float) -> None:
        """Called by the server when the served model's error rate climbs."""
        self._fallback.set()
        self.submit(lambda: self._fall_back(model, rate))

    def open_verified(self, slot: Slot) -> LoadedModel:
        return open_verified(slot, self.store, self.policy)

    # ------------------------------------------------------------------ deploy

    def deploy(self, cmd: Command) -> None:
        """The whole state machine for one deploy command (runs on the install thread)."""
        ctx: dict[str, Any] = {"command": cmd.id, "rollout": cmd.rollout, "version": cmd.version}
        try:
            check_command(cmd, time.time(), self.store, self.policy)
        except InstallError as exc:
            detail = failure_detail(exc.step, str(exc), exc)
            self.emit("deploy", "failed", f"refused: {exc}", detail=detail, **ctx)
            return
        self.store.begin_install({**ctx, "kind": "deploy", "name": cmd.name, "step": "downloading"})
        self._install(
            ctx, lambda: self._download(cmd, ctx), cmd.sha256, cmd.name, cmd.version,
            shadow=self.shadow_settings(cmd.shadow),
        )  # fmt: skip

    def shadow_settings(self, ordered: ShadowSettings | None) -> ShadowSettings | None:
        """What a deploy shadows: the command's settings (a rollout's, signed) win over the
        local policy's for that one deploy; None: no shadow run."""
        if ordered is not None:
            return ordered
        p = self.policy
        if p.shadow_inputs <= 0:
            return None
        return ShadowSettings(p.shadow_inputs, p.shadow_min_agreement, p.shadow_timeout)

    def provision(self, bundle: Path) -> None:
        """Install a local bundle at start (offline provisioning): no download, no probation."""
        try:
            manifest = read_manifest(bundle)
        except EdgekitError as exc:
            self.emit(
                "deploy", "failed", f"local bundle unusable: {exc}", detail={"reason": str(exc)}
            )
            return
        newest = self.store.highest_committed(manifest.name)
        if newest is not None and newest >= manifest.version:
            if newest > manifest.version:
                log.warning("local bundle %s-%s is older than the committed %s-%s; not installed",
                            manifest.name, manifest.version, manifest.name, newest)  # fmt: skip
            return
        ctx: dict[str, Any] = {"command": None, "rollout": None, "version": manifest.version}
        self.store.begin_install({**ctx, "kind": "provision", "step": "verifying"})
        self._install(ctx, lambda: bundle, None, None, None, probation=False, local=True)

    def _download(self, cmd: Command, ctx: dict[str, Any]) -> Path:
        self._pause(ctx, "downloading")
        t0 = time.monotonic()
        path = fetch(cmd, self.downloads, self.policy, self.token())
        detail = {"bytes": path.stat().st_size, "seconds": round(time.monotonic() - t0, 3)}
        self.emit("deploy", "downloading", "bundle downloaded", detail=detail, **ctx)
        return path

    def _install(
        self,
        ctx: dict[str, Any],
        obtain: Callable[[], Path],
        sha256: str | None,
        name: str | None,
        version: int | None,
        *,
        probation: bool = True,
        local: bool = False,
        shadow: ShadowSettings | None = None,
    ) -> None:
        step = "downloading"
        candidate: LoadedModel | None = None
        previous: LoadedModel | None = None
        activated = False
        staging: Path | None = None
        try:
            bundle_file = obtain()
            digest = sha256 or sha256_file(bundle_file)
            step = "verifying"
            self.store.journal_step(step)
            self._pause(ctx, step)
            staging, manifest = verify(
                bundle_file, self.store, self.policy, sha256=sha256, name=name, version=version
            )
            ctx["version"] = manifest.version
            self.emit("deploy", step, "bundle verified", detail={"name": manifest.name}, **ctx)
            step = "self_test"
            self.store.journal_step(step, slot=f"{manifest.name}-{manifest.version}")
            self._pause(ctx, step)
            source = "local" if local else "download"
            candidate = self._self_test_staged(staging, manifest, source, digest)
            slot, meta = candidate.slot, candidate.slot.meta
            self.emit(
                "deploy",
                step,
                f"self-test passed; chose {candidate.runtime}-{candidate.precision}",
                detail=meta,
                **ctx,
            )
            if probation and shadow is not None and self.server.current is not None:
                step = "shadow"
                self.store.journal_step(step)
                self._pause(ctx, step)
                self._shadow(candidate, shadow, ctx)
            step = "activating"
            self.store.journal_step(step)
            self._pause(ctx, step)
            served = self.server.health()  # the old model's, to compare the new one with
            old = self.server.current
            baseline = (
                confidence_baseline(served, self.policy),
                latency_baseline(
                    served,
                    self.policy,
                    old.selftest_latency_ms if old is not None else None,
                    candidate.selftest_latency_ms,
                ),
            )
            self._fallback.clear()
            self.store.activate(slot)
            previous = self.server.swap(candidate)
            activated = True
            self.on_change()
            self.emit("deploy", step, f"activated {slot.id}", detail=meta["variant"], **ctx)
            if probation:
                step = "probation"
                self.store.journal_step(step)
                self._pause(ctx, step)
                health = self._probation(candidate, baseline)
                self.emit("deploy", step, "probation passed", detail=health, **ctx)
            self.store.commit(slot)
            self.emit("deploy", "committed", f"committed {slot.id}", detail={}, **ctx)
            if previous is not None:
                previous.close()
        except Exception as exc:
            failed_step, reason = describe_failure(exc)
            failed_step = failed_step if failed_step != "failed" else step
            log.error("install failed at %s: %s", failed_step, reason)
            if activated:
                self._roll_back(candidate, previous, failed_step, reason, ctx)
            else:
                if candidate is not None:
                    candidate.close()
                if staging is not None:  # a self-test that failed leaves its staging dir
                    shutil.rmtree(staging, ignore_errors=True)
                detail = failure_detail(failed_step, reason, exc)
                self.emit(
                    "deploy", "failed", f"{failed_step} failed: {reason}", detail=detail, **ctx
                )
                self.store.end_install()
                self.store.prune()
        finally:
            if not local:  # extracted into a slot, or refused: the download is not needed
                clear_downloads(self.downloads)
            self.on_change()

    @staticmethod
    def _pause(ctx: dict[str, Any], step: str) -> None:
        if ctx.get("command"):  # commanded installs only: provisioning never pauses
            pause_for_tests(step)

    def _shadow(
        self, candidate: LoadedModel, settings: ShadowSettings, ctx: dict[str, Any]
    ) -> None:
        """The ``shadow`` event is sent whatever the outcome, so the hub records agreement
        and latencies of a refused candidate too; agreement under the minimum then fails
        the deploy before the candidate ever answers a caller."""
        report = self.server.shadow(candidate, settings.inputs, settings.timeout)
        report["min_agreement"] = settings.min_agreement
        agreement = report.get("agreement")
        if not report["inputs"] or agreement is None or agreement >= settings.min_agreement:
            self.emit("deploy", "shadow", "shadow run finished", detail=report, **ctx)
            return
        why = (
            f"agreement {agreement:.3f} below {settings.min_agreement:g} "
            f"on {report['inputs']} inputs"
        )
        self.emit("deploy", "shadow", f"shadow run finished: {why}", detail=report, **ctx)
        raise InstallError("shadow", why, code=SHADOW_DISAGREEMENT)

    def _probation(
        self, candidate: LoadedModel, baseline: tuple[float | None, float | None]
    ) -> dict[str, Any]:
        """Watch the new model; ``baseline`` is the old one's (confidence, p95 latency)."""
        end = time.monotonic() + self.policy.probation_seconds
        while True:
            final = time.monotonic() >= end
            if self.server.current is not candidate:
                raise InstallError("probation", "the new model was replaced during probation")
            if self._fallback.is_set():
                raise InstallError("probation", "error rate climbed above the fallback threshold")
            health = self.server.health()
            reason = judge_probation(
                health,
                self.policy,
                selftest_latency_ms=candidate.selftest_latency_ms,
                baseline_confidence=baseline[0],
                baseline_latency_ms=baseline[1],
                final=final,
            )
            if reason:
                raise InstallError("probation", reason)
            if final or self._stop.is_set():
                return health
            self._stop.wait(min(PROBATION_TICK, max(0.0, end - time.monotonic())))

    def _roll_back(
        self,
        candidate: LoadedModel | None,
        previous: LoadedModel | None,
        failed_step: str,
        reason: str,
        ctx: dict[str, Any],
    ) -> None:
        restored = self.store.revert()
        if previous is None and restored is not None:
            try:
                previous = self.open_verified(restored)
            except EdgekitError as exc:
                log.error("last known good %s unusable: %s", restored.id, exc)
        self.server.swap(previous)
        self.on_change()
        if candidate is not None:
            candidate.close()
        self._fallback.clear()
        self.store.end_install()
        self.store.prune()
        detail = {
            "failed_step": failed_step,
            "reason": reason,
            "restored": restored.id if restored else None,
            "restored_version": restored.version if restored else None,
        }
        self.emit("rollback", "rolled_back", f"rolled back: {reason}", detail=detail, **ctx)

    # ------------------------------------------------------------------ rollback & fallback

    def rollback(self, cmd: Command) -> None:
        """A commanded rollback to an older version kept in the store (or downloaded)."""
        ctx: dict[str, Any] = {"command": cmd.id, "rollout": cmd.rollout, "version": cmd.version}
        try:
            check_command(cmd, time.time(), self.store, self.policy)
            name, target = rollback_target(cmd, self.store)
            if target is None:
                self._rollback_download(cmd, name, ctx)
                return
            model = self.open_verified(target)
        except Exception as exc:
            step, reason = describe_failure(exc)
            self.store.end_install()  # a failed rollback download must not look interrupted
            self.store.prune()
            clear_downloads(self.downloads)
            detail = {"failed_step": step, "reason": reason}
            self.emit("rollback", "failed", f"rollback refused: {reason}", detail=detail, **ctx)
            return
        self._serve_rolled_back(model, ctx)

    def _rollback_download(self, cmd: Command, name: str, ctx: dict[str, Any]) -> None:
        """Download a version committed before (rollback_target checked the sha256)."""
        self.store.begin_install({**ctx, "kind": "rollback", "step": "downloading"})
        path = self._download(cmd, ctx)
        staging, manifest = verify(
            path, self.store, self.policy, sha256=cmd.sha256, name=name,
            version=cmd.version, rollback=True,
        )  # fmt: skip
        try:
            model = self._self_test_staged(staging, manifest, "download", cmd.sha256)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already if it became a slot
            clear_downloads(self.downloads)
        self._serve_rolled_back(model, ctx)

    def _self_test_staged(
        self, staging: Path, manifest: Manifest, source: str, digest: str | None
    ) -> LoadedModel:
        """Self-test the verified bundle in ``staging`` and keep it as a slot that records
        where it came from and its sha256 (the rollback history relies on it)."""
        return self_test_and_open(
            staging / "bundle",
            manifest,
            self.policy,
            lambda meta: self.store.add_slot(
                staging, manifest.name, manifest.version,
                {**meta, "source": source, "bundle_sha256": digest},
            ),
        )  # fmt: skip

    def apply_keys(self, cmd: Command) -> None:
        """A signed ``keys`` command (install thread: installs queued before it finish
        under the keys they were sent with)."""
        apply_keys(cmd, self.policy, self.store, self.emit)

    def _serve_rolled_back(self, model: LoadedModel, ctx: dict[str, Any]) -> None:
        """Commit and serve the target of a commanded rollback (no probation)."""
        self.store.commit(model.slot)
        previous = self.server.swap(model)
        if previous is not None:
            previous.close()
        self.on_change()
        detail = {
            "reason": "commanded",
            "restored": model.slot.id,
            "restored_version": model.slot.version,
        }
        msg = f"rolled back to {model.slot.id}"
        self.emit("rollback", "rolled_back", msg, detail=detail, **ctx)

    def _fall_back(self, model: LoadedModel, rate: float) -> None:
        if self.server.current is not model:
            return  # already replaced (probation handled it, or a newer install)
        target = self.store.fallback_target(model.slot.id)
        detail: dict[str, Any] = {
            "reason": "error_rate",
            "error_rate": round(rate, 4),
            "from": model.slot.id,
        }
        if target is None:
            msg = f"{model.slot.id} error rate {rate:.2f}; no other model to fall back to"
            self.emit("alert", None, msg, detail=detail)
            return
        try:
            replacement = self.open_verified(target)
        except EdgekitError as exc:
            detail["fallback_error"] = str(exc)
            self.emit("alert", None, f"fallback to {target.id} impossible: {exc}", detail=detail)
            return
        self.store.demote(model.slot.id, target)
        self.server.swap(replacement)
        model.close()
        self.on_change()
        detail["restored"], detail["restored_version"] = target.id, target.version
        msg = f"fell back to {target.id}: error rate {rate:.2f}"
        self.emit("rollback", "rolled_back", msg, version=target.version, detail=detail)

    # ------------------------------------------------------------------ start-up

    def recover(self) -> LoadedModel | None:
        """After a (re)start: settle an interrupted install, then open a verified model."""
        return recover(self.store, self.policy, self.emit)
