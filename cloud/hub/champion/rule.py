"""The champion check's statistics and its decision rule, pure (no I/O, no runtime).

The rule, in the order it is applied:

1. With at least ``MIN_FIELD_SAMPLES`` labeled field samples both versions could score, the
   field data decides: the candidate is **worse** when the upper end of its Wilson 95 %
   interval is below the champion's accuracy on the same samples, **better** when the
   lower end is above it, **similar** otherwise. Below that many samples one unlucky
   sample would move the bound by several points, so the field data only informs.
2. Without enough field data, the bundles' own test accuracies decide: **worse** when the
   candidate's is more than ``TEST_MARGIN`` (5 points) below the champion's, **better**
   when it is more than that above, **similar** otherwise.
3. **unknown** when there is no champion (nothing runs this model yet) or neither the
   field data nor both test accuracies are there.

Only **worse** stops anything (an upload is stored either way; a rollout is refused unless
forced). The test accuracies come from different test splits when the training data
changed, which is why they only decide when the field has not spoken.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

Z95 = 1.959963984540054  # two-sided 95 % normal quantile
MIN_FIELD_SAMPLES = 30
TEST_MARGIN = 0.05
DECISIONS = ("worse", "better", "similar", "unknown")


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a proportion (closed form; the hub has no scipy). It
    keeps its coverage for small n and proportions near 0 or 1, where Wald's collapses."""
    if n <= 0:
        raise ValueError("an interval needs at least one sample")
    if not 0 <= successes <= n:
        raise ValueError(f"successes ({successes}) must be between 0 and n ({n})")
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(successes: int, n: int) -> dict[str, Any]:
    low, high = wilson(successes, n)
    return {"correct": successes, "n": n, "value": successes / n, "low": low, "high": high}


def field_block(
    labels: Sequence[str],
    candidate: Sequence[str],
    champion: Sequence[str],
    devices: Sequence[str],
) -> dict[str, Any]:
    """Accuracy of both versions with intervals, per class, and their agreement, on the
    samples both could score (aligned lists: the true label, each version's answer)."""
    n = len(labels)
    if not n == len(candidate) == len(champion) == len(devices):
        raise ValueError("labels, answers and devices must be aligned")
    cand_ok = [c == y for c, y in zip(candidate, labels, strict=True)]
    champ_ok = [c == y for c, y in zip(champion, labels, strict=True)]
    per_class: dict[str, dict[str, Any]] = {}
    for y, a, b in zip(labels, cand_ok, champ_ok, strict=True):
        row = per_class.setdefault(y, {"n": 0, "candidate": 0, "champion": 0})
        row["n"] += 1
        row["candidate"] += int(a)
        row["champion"] += int(b)
    for row in per_class.values():
        row["candidate"] = row["candidate"] / row["n"]
        row["champion"] = row["champion"] / row["n"]
    by_device: dict[str, int] = {}
    for d in devices:
        by_device[d] = by_device.get(d, 0) + 1
    agree = sum(a == b for a, b in zip(candidate, champion, strict=True))
    return {
        "n": n,
        "candidate": proportion(sum(cand_ok), n) if n else None,
        "champion": proportion(sum(champ_ok), n) if n else None,
        "agreement": proportion(agree, n) if n else None,
        "per_class": dict(sorted(per_class.items())),
        "by_device": dict(sorted(by_device.items())),
    }


def decide(
    field: dict[str, Any] | None,
    candidate_test: float | None,
    champion_test: float | None,
    *,
    has_champion: bool = True,
) -> tuple[str, str]:
    """``(decision, reason)`` by the rule in the module docstring."""
    if not has_champion:
        return "unknown", "no champion: no device runs another version of this model"
    n = int(field["n"]) if field else 0
    if field and n >= MIN_FIELD_SAMPLES:
        cand, champ = field["candidate"], field["champion"]
        what = (
            f"on {n} labeled field samples the candidate scores {cand['value']:.1%} "
            f"(95 % {cand['low']:.1%}-{cand['high']:.1%}), the champion {champ['value']:.1%}"
        )
        if cand["high"] < champ["value"]:
            return "worse", f"clearly worse: {what}"
        if cand["low"] > champ["value"]:
            return "better", f"better: {what}"
        return "similar", f"similar: {what}"
    few = f"{n} labeled field sample(s), fewer than {MIN_FIELD_SAMPLES}; " if n else ""
    if candidate_test is None or champion_test is None:
        return "unknown", f"{few or 'no labeled field data; '}a bundle has no test accuracy"
    diff = candidate_test - champion_test
    what = (
        f"{few or 'no labeled field data; '}test accuracy {candidate_test:.1%} against the "
        f"champion's {champion_test:.1%} ({diff * 100:+.1f} points, margin "
        f"{TEST_MARGIN * 100:.0f})"
    )
    if diff < -TEST_MARGIN:
        return "worse", f"clearly worse: {what}"
    if diff > TEST_MARGIN:
        return "better", f"better: {what}"
    return "similar", f"similar: {what}"


def rule_description() -> dict[str, Any]:
    """The thresholds, stored with every comparison so old ones stay explainable."""
    return {
        "min_field_samples": MIN_FIELD_SAMPLES,
        "test_margin": TEST_MARGIN,
        "confidence": 0.95,
        "interval": "wilson",
    }
