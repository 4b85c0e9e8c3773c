"""Bringing an installed model (back) into service: after a restart, a rollback or a
fallback.

Nothing on disk is trusted: a slot is re-verified (signature and every file hash) and its
recorded variant re-run on the golden set before it serves again; if that variant no
longer passes (a runtime upgrade, a different CPU), the full self-test picks another.

:func:`recover` runs once at start: it settles an install the journal says was
interrupted (before ``activating``: the old model was never touched, report ``failed``;
from ``activating`` on: the new model was never committed, roll back to the last known
good one), then opens the active model, falling back to the last known good one when the
active one no longer verifies.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.bundle import ModelStore, Slot
from edge.contract import Manifest
from edge.errors import EdgekitError, InstallError
from edge.install.policy import Policy
from edge.install.states import OnCrash, on_crash
from edge.install.steps import Emit, recheck_slot, run_self_test
from edge.runtime import Model, golden_check
from edge.serving import LoadedModel

log = logging.getLogger(__name__)


def open_slot(slot: Slot, manifest: Manifest, runtime: str, precision: str) -> LoadedModel:
    """Load one variant of an installed slot (no checks: the caller has made them), with
    the thread count its self-test chose."""
    variant = slot.meta.get("variant", {})
    threads = variant.get("threads") if variant.get("runtime") == runtime else None
    threads = threads if isinstance(threads, int) and threads >= 1 else None
    model = Model.open(slot.bundle_dir, manifest, runtime, precision, threads=threads)
    return LoadedModel(slot, manifest, model, runtime, precision, variant.get("latency_ms"))


def open_verified(slot: Slot, store: ModelStore, policy: Policy) -> LoadedModel:
    """Re-verify a slot and open its chosen variant, checked on the golden set again.

    Raises InstallError (step ``verifying`` or ``self_test``) when it may not serve.
    """
    manifest = recheck_slot(slot, policy)
    variant = slot.meta.get("variant") or {}
    runtime, precision = variant.get("runtime"), variant.get("precision")
    if runtime and precision:
        model: LoadedModel | None = None
        try:
            model = open_slot(slot, manifest, runtime, precision)
            golden_check(model.predictor, per_sample=True)
            return model
        except EdgekitError as exc:
            log.warning("%s on %s-%s: %s; testing again", slot.id, runtime, precision, exc)
        if model is not None:
            model.close()
    return self_test_and_open(
        slot.bundle_dir, manifest, policy, lambda meta: store.update_meta(slot, **meta)
    )


def self_test_and_open(
    bundle_dir: Path, manifest: Manifest, policy: Policy, save: Callable[..., Slot]
) -> LoadedModel:
    """The ``self_test`` step, the one place it happens: test every variant, record the
    chosen one in the slot through ``save(meta)`` (which returns the slot), open it."""
    report = run_self_test(bundle_dir, manifest, policy)
    chosen = report.chosen
    if chosen is None:
        raise InstallError("self_test", "no variant passed its self-test")
    slot = save({"variant": chosen.to_dict(), "selftest": report.to_dict()})
    return open_slot(slot, manifest, chosen.runtime, chosen.precision)


def recover(store: ModelStore, policy: Policy, emit: Emit) -> LoadedModel | None:
    """After a (re)start: settle an interrupted install, then open a verified model."""
    journal = store.recover()
    if journal is not None:
        step = journal.get("step") or "downloading"
        ctx = {k: journal.get(k) for k in ("command", "rollout", "version")}
        reason = f"agent restarted during {step}"
        if on_crash(step) is OnCrash.DISCARD:
            detail: dict[str, Any] = {"failed_step": step, "reason": reason}
            emit("deploy", "failed", f"install interrupted: {reason}", detail=detail, **ctx)
        else:
            restored = store.revert()
            detail = {
                "failed_step": step,
                "reason": f"{reason}; the new model was never committed",
                "restored": restored.id if restored else None,
            }
            emit("rollback", "rolled_back", f"rolled back: {reason}", detail=detail, **ctx)
        store.end_install()
        store.prune()
    return _open_active(store, policy, emit)


def _open_active(store: ModelStore, policy: Policy, emit: Emit) -> LoadedModel | None:
    tried: set[str] = set()
    while (slot := store.active()) is not None and slot.id not in tried:
        tried.add(slot.id)
        try:
            return open_verified(slot, store, policy)
        except EdgekitError as exc:
            log.error("installed model %s unusable: %s", slot.id, exc)
            lkg = store.last_known_good()
            detail = {"reason": str(exc), "slot": slot.id}
            if lkg is not None and lkg.id != slot.id and lkg.id not in tried:
                store.revert()
                detail["restored"] = lkg.id
                emit("rollback", "rolled_back", f"{slot.id} unusable", detail=detail)
                continue
            emit("error", None, f"no usable model: {exc}", detail=detail)
            return None
    return None
