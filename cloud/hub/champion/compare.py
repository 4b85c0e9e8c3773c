"""``compare``: a candidate bundle against the champion bundle on labeled field samples,
plus both bundles' own test metrics, decided by :mod:`cloud.hub.champion.rule`."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloud.hub.champion import rule
from cloud.hub.champion.evaluate import FieldSample, answers, opened, variant_name
from edge.errors import EdgekitError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Contender:
    """One side of a comparison: a registered version and its bundle file."""

    name: str
    version: int
    bundle: Path
    test_accuracy: float | None = None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "test_accuracy": self.test_accuracy}


@dataclass(frozen=True)
class Comparison:
    """What the check found and decided; ``to_dict`` is the API's ``comparison`` shape."""

    candidate: dict[str, Any]
    champion: dict[str, Any] | None
    decision: str
    reason: str
    field: dict[str, Any] | None = None
    excluded: int = 0  # field samples left out: the candidate was trained on them
    errors: tuple[str, ...] = ()
    at: float = dataclasses.field(default_factory=time.time)

    @property
    def worse(self) -> bool:
        return self.decision == "worse"

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "champion": self.champion,
            "decision": self.decision,
            "reason": self.reason,
            "field": self.field,
            "excluded": self.excluded,
            "errors": list(self.errors),
            "rule": rule.rule_description(),
            "at": self.at,
        }


def compare(
    candidate: Contender,
    champion: Contender | None,
    samples: Sequence[FieldSample],
    *,
    trusted_key: Path | None,
    excluded: int = 0,
) -> Comparison:
    """Run both bundles on ``samples`` (those either version refuses are left out) and
    decide. A bundle the hub cannot run is not an error: the check says so and falls back
    to the test metrics."""
    errors: list[str] = []
    block: dict[str, Any] | None = None
    cand_info = candidate.describe()
    champ_info = champion.describe() if champion is not None else None
    if champion is not None and champ_info is not None and samples:
        try:
            with opened(candidate.bundle, trusted_key) as cp:
                cand_info["variant"] = variant_name(cp)
                cand = answers(cp, samples)
            with opened(champion.bundle, trusted_key) as hp:
                champ_info["variant"] = variant_name(hp)
                champ = answers(hp, samples)
        except EdgekitError as exc:
            log.warning("champion check of %s v%s: %s", candidate.name, candidate.version, exc)
            errors.append(str(exc))
        else:
            keep = [i for i, (a, b) in enumerate(zip(cand, champ, strict=True)) if a and b]
            block = rule.field_block(
                [samples[i].label for i in keep],
                [str(cand[i]) for i in keep],
                [str(champ[i]) for i in keep],
                [samples[i].device for i in keep],
            )
            block["skipped"] = len(samples) - len(keep)
    decision, reason = rule.decide(
        block,
        candidate.test_accuracy,
        champion.test_accuracy if champion else None,
        has_champion=champion is not None,
    )
    return Comparison(
        candidate=cand_info,
        champion=champ_info,
        decision=decision,
        reason=reason,
        field=block,
        excluded=excluded,
        errors=tuple(errors),
    )
