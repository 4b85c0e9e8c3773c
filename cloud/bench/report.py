"""Render bench.json as markdown with a chart per ratio group."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return "" if value is None else str(value)


def markdown_table(columns: list[str], rows: list[list[Any]]) -> str:
    head = "| " + " | ".join(columns) + " |"
    sep = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join([head, sep, *body])


def ratio_ok(r: dict[str, Any]) -> bool | None:
    """Whether a ratio meets its target; None when it has no target."""
    target, value = r.get("target"), r.get("value")
    if target is None or value is None:
        return None
    return bool(value >= target if r.get("higher_is_better", True) else value <= target)


def _ratio_chart(out: Path, ratios: list[dict[str, Any]]) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ModuleNotFoundError:
        return None
    shown = [r for r in ratios if isinstance(r.get("value"), (int, float))]
    if not shown:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(shown)))
    names = [r["name"] for r in shown]
    colors = ["#2a9d8f" if ratio_ok(r) is not False else "#e76f51" for r in shown]
    ax.barh(names, [r["value"] for r in shown], color=colors)
    for i, r in enumerate(shown):
        if r.get("target") is not None:
            ax.plot([r["target"], r["target"]], [i - 0.4, i + 0.4], color="black", lw=1.5)
    ax.invert_yaxis()
    ax.set_xlabel("ratio (black line: target)")
    ax.set_title("Ratios against same-run baselines")
    fig.tight_layout()
    path = out / "ratios.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def write_report(out: Path, doc: dict[str, Any]) -> Path:
    m = doc["machine"]
    lines = [
        "# edgekit benchmark report",
        "",
        f"Created {doc['created']}{' (quick)' if doc.get('quick') else ''} on "
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}.",
        "",
    ]
    all_ratios: list[dict[str, Any]] = []
    for name, res in doc["benchmarks"].items():
        lines += [f"## {name}", ""]
        if res.get("status") != "ok":
            lines += [f"**failed**: {res.get('error')}", ""]
            continue
        ratios = res.get("ratios", [])
        if ratios:
            rows = []
            for r in ratios:
                ok = ratio_ok(r)
                verdict = "" if ok is None else ("meets target" if ok else "misses target")
                rows.append(
                    [r["name"], r.get("value"), r.get("baseline"), r.get("target"), verdict]
                )
            lines += [markdown_table(["ratio", "value", "baseline", "target", ""], rows), ""]
            all_ratios += [{**r, "name": f"{name}: {r['name']}"} for r in ratios]
        for table in res.get("tables", []):
            lines += [
                f"### {table['title']}",
                "",
                markdown_table(table["columns"], table["rows"]),
                "",
            ]
        for chart in res.get("charts", []):
            lines += [f"![{name}]({chart})", ""]
        lines += [f"- {n}" for n in res.get("notes", [])]
        lines.append("")
    chart = _ratio_chart(out, all_ratios)
    if chart:
        lines[4:4] = [f"![ratios]({chart})", ""]
    path = out / "bench.md"
    path.write_text("\n".join(lines) + "\n")
    return path
