"""The data report: what was loaded, how it was split, and the value ranges seen."""

from __future__ import annotations

from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np

from cloud.data.dataset import Dataset
from cloud.data.split import Split

MAX_FEATURE_ROWS = 30  # the printed table stays readable; the JSON keeps every feature


def data_report(ds: Dataset, split: Split, fingerprint: str) -> dict[str, Any]:
    """A JSON-ready summary stored in run.json (``dataset.report``) and rendered in report.md."""
    counts = ds.class_counts()
    per_split = {
        name: {
            lbl: int(c)
            for lbl, c in zip(
                ds.labels, np.bincount(ds.y[idx], minlength=ds.n_classes), strict=True
            )
        }
        for name, idx in (("train", split.train), ("val", split.val), ("test", split.test))
    }
    report: dict[str, Any] = {
        "source": ds.source,
        "kind": ds.kind,
        "fingerprint": fingerprint,
        "samples": len(ds.x),
        "classes": counts,
        "splits": split.sizes(),
        "split_classes": per_split,
        "skipped": {"count": len(ds.skipped), "examples": ds.skipped[:10]},
    }
    if ds.kind == "tabular":
        names = ds.feature_names or [f"f{i}" for i in range(ds.x.shape[1])]
        report["features"] = [
            {
                "name": name,
                "min": float(ds.x[:, i].min()),
                "max": float(ds.x[:, i].max()),
                "mean": float(ds.x[:, i].mean()),
                "std": float(ds.x[:, i].std()),
            }
            for i, name in enumerate(names)
        ]
    else:
        _, h, w, c = ds.x.shape
        report["image"] = {
            "height": int(h),
            "width": int(w),
            "channels": int(c),
            "color": ds.color,
            "raw_range": list(ds.raw_range) if ds.raw_range else None,
            "channel_ranges": [
                {
                    "min": float(ds.x[..., k].min()),
                    "max": float(ds.x[..., k].max()),
                    "mean": float(ds.x[..., k].mean()),
                }
                for k in range(c)
            ],
        }
    return report


def render_report(report: dict[str, Any]) -> str:
    """Markdown (also readable as plain text on a terminal)."""
    lines = [
        f"- source: `{report['source']}` ({report['kind']}, {report['samples']} samples)",
        f"- fingerprint: `{report['fingerprint']}`",
        "- split: " + ", ".join(f"{k} {v}" for k, v in report["splits"].items()),
    ]
    if report["skipped"]["count"]:
        ex = ", ".join(report["skipped"]["examples"][:3])
        lines.append(f"- skipped unreadable files: {report['skipped']['count']} (e.g. {ex})")
    lines += ["", "| class | samples | train | val | test |", "|---|---:|---:|---:|---:|"]
    sc = report["split_classes"]
    for label, n in report["classes"].items():
        lines.append(
            f"| {label} | {n} | {sc['train'][label]} | {sc['val'][label]} | {sc['test'][label]} |"
        )
    lines.append("")
    if "features" in report:
        lines += feature_table(report["features"], more="see run.json")
    else:
        img = report["image"]
        lines.append(
            f"- images: {img['height']}x{img['width']}x{img['channels']} {img['color']}, "
            f"raw range {img['raw_range']}"
        )
        for k, r in enumerate(img["channel_ranges"]):
            lines.append(
                f"- channel {k}: min {r['min']:.4g}, max {r['max']:.4g}, mean {r['mean']:.4g}"
            )
    return "\n".join(lines) + "\n"


def feature_table(
    features: list[dict[str, Any]], *, more: str, max_rows: int = MAX_FEATURE_ROWS
) -> list[str]:
    """Markdown lines of the per-feature value ranges, cut after ``max_rows`` rows with a
    last row saying how many more there are and where (``more``) to find them."""
    lines = ["| feature | min | max | mean | std |", "|---|---:|---:|---:|---:|"]
    for f in features[:max_rows]:
        lines.append(
            f"| {f['name']} | {f['min']:.4g} | {f['max']:.4g} | {f['mean']:.4g} | {f['std']:.4g} |"
        )
    if len(features) > max_rows:
        lines.append(f"| ... {len(features) - max_rows} more ({more}) | | | | |")
    return lines


def source_name(source: Any) -> str:
    """The dataset source without the build machine's directories (``/home/me/wine.csv`` ->
    ``wine.csv``): a model card travels to reviewers and devices, the path means nothing
    there and may reveal a user name. Names that are not paths (``digits``) pass unchanged."""
    text = str(source).rstrip("/\\")
    return PureWindowsPath(text).name if "\\" in text else PurePosixPath(text).name or text
