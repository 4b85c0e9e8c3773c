"""The floor benchmark's pure parts: measurements -> ratios, tables and charts.

Kept apart from the measuring (cloud/bench/floor.py, cloud/bench/floor_bare.py) so what the
report shows is tested without timing anything.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BARE_TARGET = 1.15  # Model.infer / the fastest bare Python call of the runtime
TOOL_TARGET = 1.10  # Model.infer / the runtime's own tool, for models over TOOL_MIN_MS
TOOL_MIN_MS = 1.0
INT8_TARGETS = {"litert": 1.4}  # fp32 / int8 through Model.infer, MobileNetV2 1.0, 2 threads


def ratio(num: float | None, den: float | None) -> float | None:
    """``num / den``, or None when either side is missing or the baseline is not positive."""
    if num is None or den is None or den <= 0:
        return None
    return num / den


def median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def floor_of(bare_medians: dict[str, float]) -> tuple[str | None, float | None]:
    """The fastest bare call style: ``(name, median ms)``; ``(None, None)`` without any."""
    if not bare_medians:
        return None, None
    name = min(bare_medians, key=bare_medians.__getitem__)
    return name, bare_medians[name]


def latency_row(
    model: str,
    target: str,
    variant: dict[str, Any],
    times: dict[str, list[float]],
    tool: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One variant's row from the interleaved timings (``Model.infer`` and bare styles, ms
    per call) and the tool pairs (``tool_ms`` and ``infer_ms`` medians of each round)."""
    infer = times["Model.infer"]
    bare = {k: float(statistics.median(v)) for k, v in times.items() if k != "Model.infer" and v}
    bare_call, bare_ms = floor_of(bare)
    infer_ms = median(infer)
    row: dict[str, Any] = {
        "model": model,
        "target": target,
        **variant,
        "calls": len(infer),
        "infer_ms": infer_ms,
        "infer_p95_ms": sorted(infer)[int(0.95 * (len(infer) - 1))] if infer else None,
        "bare_call": bare_call,
        "bare_ms": bare_ms,
        "bare_ms_by_call": bare,
        "ratio_bare": ratio(infer_ms, bare_ms),
        "tool": None,
        "tool_ms": None,
        "ratio_tool": None,
        "tool_error": None,
    }
    if tool:
        tool_ms, paired = median(tool.get("tool_ms", [])), median(tool.get("infer_ms", []))
        row.update(
            tool=tool.get("tool"),
            tool_ms=tool_ms,
            tool_rounds_ms=tool.get("tool_ms", []),
            infer_paired_ms=paired,
            ratio_tool=ratio(paired, tool_ms),
            tool_error=tool.get("error"),
        )
    return row


def latency_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per variant: Model.infer over the bare floor (target 1.15) and, for models over
    1 ms with a tool, over the tool (target 1.10)."""
    out = []
    for r in rows:
        name = f"{r['model']} {r['target']}"
        out.append(
            {
                "name": f"{name}: Model.infer / bare {r['runtime']} (p50)",
                "value": _round(r["ratio_bare"]),
                "baseline": f"fastest bare Python call: {r['bare_call']}, same file and threads",
                "target": BARE_TARGET,
                "higher_is_better": False,
                "unit": "x",
            }
        )
        if r.get("tool") and (r["infer_ms"] or 0) > TOOL_MIN_MS:
            out.append(
                {
                    "name": f"{name}: Model.infer / {r['tool']} (p50)",
                    "value": _round(r["ratio_tool"]),
                    "baseline": f"{r['tool']} on the same file, sync, batch 1, same threads",
                    "target": TOOL_TARGET,
                    "higher_is_better": False,
                    "unit": "x",
                }
            )
    return out


LATENCY_COLUMNS = [
    "model",
    "variant",
    "recipe",
    "threads",
    "Model.infer us",
    "bare us",
    "bare call",
    "infer/bare",
    "tool",
    "tool us",
    "infer/tool",
]


def latency_table(rows: list[dict[str, Any]]) -> list[list[Any]]:
    us = _scaled(1000.0)
    return [
        [
            r["model"],
            r["target"],
            r.get("recipe"),
            r.get("threads"),
            us(r["infer_ms"]),
            us(r["bare_ms"]),
            r["bare_call"],
            _round(r["ratio_bare"]),
            r["tool"] or ("none" if r["runtime"] == "onnxruntime" else None),
            us(r["tool_ms"]),
            _round(r["ratio_tool"]),
        ]
        for r in rows
    ]


def int8_row(runtime: str, fp32: list[float], int8: list[float], recipe: str | None) -> dict:
    f, i = median(fp32), median(int8)
    return {
        "runtime": runtime,
        "recipe": recipe,
        "fp32_ms": f,
        "int8_ms": i,
        "speedup": ratio(f, i),
        "target": INT8_TARGETS.get(runtime),
        "calls": min(len(fp32), len(int8)),
    }


def int8_ratios(rows: list[dict[str, Any]], model: str, threads: int) -> list[dict[str, Any]]:
    return [
        {
            "name": f"{model} {r['runtime']} int8 speed-up, {threads} threads (Model.infer)",
            "value": _round(r["speedup"]),
            "baseline": f"{r['runtime']}-fp32 median through Model.infer, interleaved",
            "target": r["target"],
            "higher_is_better": True,
            "unit": "x",
        }
        for r in rows
    ]


INT8_COLUMNS = ["runtime", "int8 recipe (exporter's choice)", "fp32 ms", "int8 ms", "speed-up"]


def int8_table(rows: list[dict[str, Any]]) -> list[list[Any]]:
    ms = _scaled(1.0)
    return [
        [r["runtime"], r["recipe"], ms(r["fp32_ms"]), ms(r["int8_ms"]), _round(r["speedup"])]
        for r in rows
    ]


THROUGHPUT_COLUMNS = [
    "variant",
    "infer b1 fps",
    "infer b8 fps",
    "stream b1 fps",
    "stream b8 fps",
    "tool",
    "tool b1 fps",
    "tool b8 fps",
    "stream b8 / tool b8",
]


def throughput_table(rows: list[dict[str, Any]]) -> list[list[Any]]:
    fps = _scaled(1.0, 1)
    return [
        [
            r["target"],
            fps(r["infer_fps"].get("1")),
            fps(r["infer_fps"].get("8")),
            fps(r["stream_fps"].get("1")),
            fps(r["stream_fps"].get("8")),
            r.get("tool"),
            fps(r["tool_fps"].get("1")),
            fps(r["tool_fps"].get("8")),
            _round(ratio(r["stream_fps"].get("8"), r["tool_fps"].get("8"))),
        ]
        for r in rows
    ]


def throughput_ratios(rows: list[dict[str, Any]], model: str) -> list[dict[str, Any]]:
    """Model.stream frames/s over the tool's throughput mode (no target in the issue)."""
    out = []
    for r in rows:
        for b in ("1", "8"):
            value = ratio(r["stream_fps"].get(b), r["tool_fps"].get(b))
            if value is None:
                continue
            out.append(
                {
                    "name": f"{model} {r['target']}: Model.stream fps / {r['tool']} (batch {b})",
                    "value": _round(value),
                    "baseline": f"{r['tool']} throughput mode, batch {b}, same file",
                    "target": None,
                    "higher_is_better": True,
                    "unit": "x",
                }
            )
    return out


def _round(v: float | None, digits: int = 3) -> float | None:
    return None if v is None else round(float(v), digits)


def _scaled(scale: float, digits: int = 3) -> Any:
    def f(v: float | None) -> float | None:
        return None if v is None else round(float(v) * scale, digits)

    return f


# ---------------------------------------------------------------- charts


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def latency_chart(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Grouped bars per variant: Model.infer, the bare floor, the runtime's tool (where
    measured); microseconds when every bar is under 1 ms."""
    plt = _plt()
    series = [("infer_ms", "Model.infer"), ("bare_ms", "bare runtime call"), ("tool_ms", "tool")]
    biggest = max((r.get(k) or 0.0 for r in rows for k, _ in series), default=0.0)
    scale, unit = (1000.0, "us") if biggest < 1.0 else (1.0, "ms")
    names = [str(r["target"]) for r in rows]
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names) + 2), 4))
    for k, (key, label) in enumerate(series):
        vals = [float(r[key]) * scale if r.get(key) is not None else float("nan") for r in rows]
        xs = [i + (k - 1) * width for i in range(len(names))]
        ax.bar(xs, vals, width=width, label=label, edgecolor="black")
    ax.set_xticks(range(len(names)), labels=names, rotation=30, ha="right")
    ax.set_ylabel(f"median latency ({unit})")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def int8_chart(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    """The int8 speed-up per runtime, with each runtime's target as a black line."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [r["runtime"] for r in rows]
    values = [r["speedup"] if r["speedup"] is not None else float("nan") for r in rows]
    colors = [
        "#e76f51" if r["target"] and (r["speedup"] or 0) < r["target"] else "#2a9d8f" for r in rows
    ]
    ax.bar(names, values, color=colors, edgecolor="black")
    for i, r in enumerate(rows):
        if r["target"]:
            ax.plot([i - 0.45, i + 0.45], [r["target"]] * 2, color="black", lw=2)
            ax.annotate(
                f"target {r['target']}",
                (i, r["target"]),
                xytext=(0, 4),
                textcoords="offset points",
                ha="center",
                fontsize=8,
            )
    ax.axhline(1.0, color="grey", lw=1, ls="--")
    ax.set_ylabel("fp32 median / int8 median")
    ax.set_title(title, fontsize=10)
    return _save(plt, fig, path)


def _save(plt: Any, fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
