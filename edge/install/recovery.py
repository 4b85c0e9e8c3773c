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
from typing import Any

from edge.bundle import ModelStore, Slot
from edge.contract import Manifest
from edge.errors import EdgekitError
from edge.install.policy import Policy
from edge.install.steps import PRE_ACTIVATION, Emit, recheck_slot, run_self_test
from edge.runtime import Predictor, Tolerance, compare, load_golden, run_golden
from edge.serving import LoadedModel

log = logging.getLogger(__name__)


def open_slot(slot: Slot, manifest: Manifest, runtime: str, precision: str) -> LoadedModel:
    """Load one variant of an installed slot (no checks: the caller has made them)."""
    predictor = Predictor.open(slot.bundle_dir, manifest, runtime, precision)
    latency = slot.meta.get("variant", {}).get("latency_ms")
    return LoadedModel(slot, manifest, predictor, runtime, precision, latency)


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
            golden = load_golden(slot.bundle_dir, manifest)
            scores = run_golden(model.predictor, golden["inputs"])
            mae, top1 = compare(scores, golden["outputs"])
            if Tolerance.of(manifest).allows(mae, top1):
                return model
            log.warning("%s on %s-%s is outside tolerance now; testing again",
                        slot.id, runtime, precision)  # fmt: skip
        except EdgekitError as exc:
            log.warning("%s on %s-%s: %s; testing again", slot.id, runtime, precision, exc)
        if model is not None:
            model.close()
    report = run_self_test(slot.bundle_dir, manifest, policy)
    assert report.chosen is not None
    chosen = report.chosen
    slot = store.update_meta(slot, variant=chosen.to_dict(), selftest=report.to_dict())
    return open_slot(slot, manifest, chosen.runtime, chosen.precision)


def recover(store: ModelStore, policy: Policy, emit: Emit) -> LoadedModel | None:
    """After a (re)start: settle an interrupted install, then open a verified model."""
    journal = store.recover()
    if journal is not None:
        step = journal.get("step") or "downloading"
        ctx = {k: journal.get(k) for k in ("command", "rollout", "version")}
        reason = f"agent restarted during {step}"
        if step in PRE_ACTIVATION:
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
