"""The variant benchmark's table and ratios: rows of measurements -> what the report shows.

Kept apart from the measuring (cloud/bench/variants.py) so the presentation can change
without touching how anything is timed.
"""

from __future__ import annotations

from typing import Any

COLUMNS = [
    "model",
    "target",
    "size KiB",
    "acc %",
    "agree %",
    "drop pts",
    "export p50 ms",
    "python p50 ms",
    "python p95 ms",
    "runtime tool",
    "tool ms",
    "int8/fp32 speed-up (python)",
    "int8/fp32 speed-up (tool)",
]


def _f(v: Any, scale: float = 1.0, digits: int = 3) -> Any:
    return None if v is None else round(float(v) * scale, digits)


def table_rows(rows: list[dict[str, Any]]) -> list[list[Any]]:
    return [
        [
            r["model"],
            r["target"],
            _f(r["size"], 1 / 1024, 1),
            _f(r["accuracy"], 100, 2),
            _f(r["agreement"], 100, 2),
            _f(r["accuracy_drop_points"], 1, 2),
            _f(r["export_p50_ms"], 1, 4),
            _f(r["python_ms"], 1, 4),
            _f(r["python_p95_ms"], 1, 4),
            r["tool"],
            _f(r["tool_ms"], 1, 4),
            _f(r["speedup_vs_fp32"], 1, 2) if r["precision"] == "int8" else None,
            _f(r["tool_speedup_vs_fp32"], 1, 2) if r["precision"] == "int8" else None,
        ]
        for r in rows
    ]


def ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """int8/fp32 speed-up per model and runtime: ours, and the runtime tool's own."""
    out = []
    for r in rows:
        if r["precision"] != "int8":
            continue
        for key, who in (("speedup_vs_fp32", "python"), ("tool_speedup_vs_fp32", r["tool"])):
            out.append(
                {
                    "name": f"{r['model']} {r['runtime']} int8 speed-up ({who})",
                    "value": _f(r[key], 1, 3),
                    "baseline": f"{r['runtime']}-fp32 median ({who})",
                    "target": None,
                    "higher_is_better": True,
                    "unit": "x",
                }
            )
    return out
