"""Markdown building blocks of the model card: numbers, intervals, tables, path scrubbing.

Every section formats numbers the same way through these helpers, so "95.65% [89.2, 98.3]"
reads identically in the header, the variant table and the group section.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cloud.paths import scrub, strip_paths

__all__ = ["scrub", "strip_paths"]  # path scrubbing lives in cloud.paths (the hub uses it too)


def pct(v: Any, digits: int = 2) -> str:
    """A share as a percentage (``0.9565`` -> ``95.65%``); None -> ``n/a``."""
    return "n/a" if v is None else f"{100.0 * float(v):.{digits}f}%"


def num(v: Any, fmt: str = ".3g") -> str:
    return "n/a" if v is None else format(float(v), fmt)


def interval(ci: Sequence[float] | None, *, percent: bool = True, digits: int = 1) -> str:
    """``[lo, hi]``, in percent of a share by default (``(0.87, 0.943)`` -> ``[87.0, 94.3]``)."""
    if ci is None:
        return ""
    scale = 100.0 if percent else 1.0
    lo, hi = (scale * float(v) for v in ci)
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def pct_ci(v: Any, ci: Sequence[float] | None, digits: int = 2) -> str:
    """``95.65% [89.2, 98.3]``: the estimate with its 95 % interval (percent)."""
    text = pct(v, digits)
    return text if ci is None or v is None else f"{text} {interval(ci)}"


def num_ci(v: Any, ci: Sequence[float] | None, digits: int = 3) -> str:
    """``0.912 [0.871, 0.950]`` for a statistic on a 0..1 scale that is not a share."""
    if v is None:
        return "n/a"
    text = f"{float(v):.{digits}f}"
    return text if ci is None else f"{text} {interval(ci, percent=False, digits=digits)}"


def size(v: Any) -> str:
    if v is None:
        return "n/a"
    n = float(v)
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"


def cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; ``|`` and newlines inside cells are escaped."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def target_name(row: dict[str, Any]) -> str:
    return str(row.get("target") or f"{row.get('runtime', '?')}-{row.get('precision', '?')}")
