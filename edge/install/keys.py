"""The ``keys`` command: rotate and revoke bundle signing keys without re-provisioning.

The command has passed the agent's command checks (signed by the hub, for this device,
fresh, never seen); here its keys go into the device's keyring (edge/bundle/keyring.py),
all or nothing, and one event says what changed. The event also says whether the model
being served is still signed by a trusted key: one signed by a revoked key keeps serving
until it is replaced, but is not reopened after a restart (it no longer verifies).
"""

from __future__ import annotations

import time
from typing import Any

from edge.bundle import ModelStore, load_manifest_dir
from edge.contract import Command
from edge.errors import EdgekitError, InstallError
from edge.install.policy import Policy
from edge.install.steps import Emit


def apply_keys(cmd: Command, policy: Policy, store: ModelStore, emit: Emit) -> None:
    """Apply ``cmd.keys`` to the policy's keyring and report it (``info`` or ``error``)."""
    ctx: dict[str, Any] = {"command": cmd.id, "rollout": cmd.rollout, "version": None}
    keyring = policy.keyring
    try:
        if cmd.expires < time.time():
            raise InstallError("verifying", "command expired")
        if keyring is None:
            raise InstallError("verifying", "this agent keeps no keyring")
        change = keyring.apply(cmd.keys.get("add", ()), cmd.keys.get("revoke", ()))
    except EdgekitError as exc:
        emit("error", None, f"keys refused: {exc}", detail={"reason": str(exc)}, **ctx)
        return
    detail: dict[str, Any] = change.to_dict()
    msg = f"bundle keys: +{len(change.added)} -{len(change.revoked)}"
    active = store.active()
    if active is not None:
        try:
            keyring.verify(load_manifest_dir(active.bundle_dir))
            detail["active_trusted"] = True
        except EdgekitError as exc:
            detail["active_trusted"] = False
            msg += f"; {active.id} is no longer trusted ({exc}) and will not reopen after a restart"
    emit("info", None, msg, detail=detail, **ctx)
