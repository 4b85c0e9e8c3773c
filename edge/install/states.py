"""The deploy state machine as one table: each step, the function that does it, and what
recovery does when the agent dies during it (in the spirit of the mender client's states,
each with ``Handle`` and ``HandleError``).

The installer journals a step *before* doing it; after a restart :func:`recover` reads the
journaled step's crash rule from this same table:

* ``DISCARD``: the served model was never touched, so the candidate is dropped, the old
  model keeps serving, and a ``failed`` event says the install was interrupted;
* ``ROLL_BACK``: the new model may have served without being committed, so the store
  reverts to the last known good model and a ``rolled_back`` event says why. Probation is
  never resumed: a crash during probation may well be the new model's fault.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class OnCrash(StrEnum):
    DISCARD = "discard"
    ROLL_BACK = "roll_back"


@dataclass(frozen=True)
class Step:
    name: str  # the ``step`` of journal entries and deploy events
    does: str
    handler: str  # the function in edge.install that does it (a test resolves each one)
    on_crash: OnCrash


STEPS: tuple[Step, ...] = (
    Step("downloading", "fetch the bundle over HTTP(S), resumable, bounded",
         "steps.fetch", OnCrash.DISCARD),
    Step("verifying", "archive safety, every file's sha256, the Ed25519 signature, version",
         "steps.verify", OnCrash.DISCARD),
    Step("self_test", "run the golden set on every variant and choose one to serve",
         "recovery.self_test_and_open", OnCrash.DISCARD),
    Step("shadow", "run live inputs through the candidate beside the served model",
         "installer.Installer._shadow", OnCrash.DISCARD),
    Step("activating", "swap the candidate in; the old model stays as last known good",
         "installer.Installer._install", OnCrash.ROLL_BACK),
    Step("probation", "watch errors, latency and confidence against the old model",
         "steps.judge_probation", OnCrash.ROLL_BACK),
    Step("committed", "the candidate becomes the last known good model",
         "installer.Installer._install", OnCrash.ROLL_BACK),
)  # fmt: skip

BY_NAME = {step.name: step for step in STEPS}
# Steps during which the served model is untouched: a failure (or crash) changes nothing.
PRE_ACTIVATION = tuple(s.name for s in STEPS if s.on_crash is OnCrash.DISCARD)


def on_crash(step: str | None) -> OnCrash:
    """The crash rule of a journaled step. An unknown step (a journal from a newer agent, or
    a damaged one) rolls back: the safe choice when we cannot tell what was serving."""
    known = BY_NAME.get(step or "downloading")
    return known.on_crash if known is not None else OnCrash.ROLL_BACK
