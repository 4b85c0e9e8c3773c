"""Markdown building blocks of the model card: numbers, intervals, tables, path scrubbing.

Every section formats numbers the same way through these helpers, so "95.65% [89.2, 98.3]"
reads identically in the header, the variant table and the group section.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

# An absolute POSIX path of at least one directory (not preceded by a word character, a dot,
# a colon or a slash, so URLs and "n/a" survive), or a Windows drive path.
_POSIX_PATH = re.compile(r"(?<![\w.:/~])/(?:[\w.@+-]+/)+([\w.@+-]*)")
_WINDOWS_PATH = re.compile(r"\b[A-Za-z]:\\(?:[^\\\s|`'\"]+\\)+([^\\\s|`'\"]*)")


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


def strip_paths(text: str) -> str:
    """Replace absolute paths of the build machine by their last component.

    The card travels to reviewers and devices; ``/home/alice/data/wine.csv`` means nothing
    there and names a user, ``wine.csv`` says what was used.
    """

    def last(match: re.Match[str]) -> str:
        parts = [p for p in re.split(r"[\\/]", match.group(0)) if p]
        return parts[-1] if parts else ""

    return _WINDOWS_PATH.sub(last, _POSIX_PATH.sub(last, text))


def scrub(obj: Any) -> Any:
    """:func:`strip_paths` applied to every string inside a JSON-like value."""
    if isinstance(obj, str):
        return strip_paths(obj)
    if isinstance(obj, dict):
        return {k: scrub(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub(v) for v in obj]
    return obj
