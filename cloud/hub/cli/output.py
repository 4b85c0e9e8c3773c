"""How the API commands print: aligned text tables for people, JSON for scripts.

``--json`` prints the hub's own documented shapes (docs/hub-api.md) unchanged, so a script's
keys are the API's and stay stable; the tables are for reading and may change.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain aligned columns (no borders: greppable and cut-able); None prints as ``-``."""
    if not rows:
        return "  ".join(head) + "\n(none)"
    return str(tabulate(rows, headers=list(head), tablefmt="plain", missingval="-",
                        disable_numparse=True))  # fmt: skip


def when(ts: Any) -> str:
    """A unix time as UTC minutes (what an operator compares with logs)."""
    if not isinstance(ts, (int, float)):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def num(v: Any, spec: str = ".3g") -> str:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return "-" if v is None else str(v)
    return format(v, spec)


def model_ref(m: Any) -> str:
    if not isinstance(m, dict) or m.get("name") is None:
        return "-"
    return f"{m['name']} v{m.get('version')}"


def fields(pairs: Sequence[tuple[str, Any]]) -> str:
    """``key: value`` lines, keys aligned."""
    width = max((len(k) for k, _ in pairs), default=0)
    return "\n".join(f"{k + ':':<{width + 1}} {v}" for k, v in pairs)
