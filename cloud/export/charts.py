"""PNG charts for the model card, drawn with matplotlib's Agg backend (no display needed).

Each function takes plain numbers, writes one PNG and returns its path, so the card (and the
benchmark report) can embed them by relative link. Figures are closed after saving: the
exporter may draw many in one process.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from cloud.export.metrics import Reliability

DPI = 100


def _save(fig: Any, path: Path) -> Path:
    """Save as a 128-colour palette PNG: charts ride in every bundle shipped to devices,
    and flat-colour plots lose nothing visible while shrinking to about a third."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=DPI, format="png")
    plt.close(fig)
    try:
        from PIL import Image
    except ModuleNotFoundError:  # pillow is in the cloud extra; plain PNG without it
        path.write_bytes(buf.getvalue())
        return path
    buf.seek(0)
    with Image.open(buf) as img:
        palette = img.convert("RGB").quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        palette.save(path, format="PNG", optimize=True)
    return path


def confusion_matrix_png(cm: np.ndarray, labels: Sequence[str], path: Path) -> Path:
    """Counts heat-map, rows = true class, columns = predicted; each cell annotated."""
    n = len(labels)
    size = min(12.0, max(4.0, 0.55 * n + 2.5))
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(n), labels=list(labels), rotation=45 if n > 6 else 0, ha="right")
    ax.set_yticks(range(n), labels=list(labels))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix (test split)")
    if n <= 30:
        threshold = cm.max() / 2 if cm.size and cm.max() else 0
        for i in range(n):
            for j in range(n):
                color = "white" if cm[i, j] > threshold else "black"
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", color=color, size=8)
    return _save(fig, path)


def reliability_png(rel: Reliability, path: Path) -> Path:
    """Reliability diagram: accuracy per confidence bin against the diagonal, with counts."""
    fig, (ax, ax_n) = plt.subplots(
        2, 1, figsize=(5, 5.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    centers = (rel.edges[:-1] + rel.edges[1:]) / 2
    width = rel.edges[1] - rel.edges[0]
    filled = rel.counts > 0
    ax.bar(
        centers[filled],
        rel.accuracy[filled],
        width=width * 0.95,
        color="tab:blue",
        edgecolor="black",
        label="accuracy",
    )
    ax.bar(
        centers[filled],
        rel.confidence[filled] - rel.accuracy[filled],
        bottom=rel.accuracy[filled],
        width=width * 0.95,
        color="tab:red",
        alpha=0.3,
        label="gap to confidence",
    )
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability diagram (ECE = {rel.ece:.3f})")
    ax.legend(loc="upper left", fontsize=8)
    ax_n.bar(centers, rel.counts, width=width * 0.95, color="gray")
    log = rel.counts.max(initial=0) > 100
    ax_n.set_yscale("log" if log else "linear")
    ax_n.set_xlabel("top-1 confidence")
    ax_n.set_ylabel("samples (log scale)" if log else "samples")
    return _save(fig, path)


def variants_png(
    rows: Sequence[dict[str, Any]],
    path: Path,
    intervals: dict[str, tuple[float, float]] | None = None,
) -> Path:
    """Side-by-side bars per variant: median latency (ms) and accuracy (%).

    Both axes start at 0: a bar chart whose axis starts at 82 % turns a one-row difference
    into a bar twice as long. ``intervals`` (target -> accuracy interval, as shares) draws
    error bars, so close variants read as "within noise", not "worse". Left-out variants
    are drawn hatched so the chart never hides why a target is missing.
    """
    usable = [r for r in rows if r.get("latency_ms") is not None or r.get("accuracy") is not None]
    names = [str(r.get("target") or f"{r.get('runtime')}-{r.get('precision')}") for r in usable]
    measured = {
        "latency": [r.get("latency_ms") is not None for r in usable],
        "accuracy": [r.get("accuracy") is not None for r in usable],
    }
    lat = np.array([float(r.get("latency_ms") or 0.0) for r in usable])
    acc = np.array([100.0 * float(r.get("accuracy") or 0.0) for r in usable])
    included = [bool(r.get("included", True)) for r in usable]
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(10, 0.45 * max(len(names), 3) + 1.5))
    y = np.arange(len(names))
    colors = ["tab:orange" if "int8" in n else "tab:blue" for n in names]
    hatches = ["" if inc else "//" for inc in included]
    err = None
    if intervals:
        err = np.zeros((2, len(names)))
        for i, (n, a, has_acc) in enumerate(zip(names, acc, measured["accuracy"], strict=True)):
            if has_acc and n in intervals:
                lo, hi = intervals[n]
                err[:, i] = max(a - 100.0 * lo, 0.0), max(100.0 * hi - a, 0.0)
    for ax, values, title, xerr, known in (
        (ax_l, lat, "median latency (ms, lower is better)", None, measured["latency"]),
        (ax_a, acc, "test accuracy (%), 95% interval", err, measured["accuracy"]),
    ):
        bars = ax.barh(y, values, xerr=xerr, capsize=3, color=colors, edgecolor="black")
        for bar, hatch in zip(bars, hatches, strict=True):
            bar.set_hatch(hatch)
        ax.set_yticks(y, labels=names)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        ax.set_xlim(left=0.0)
        for yi, v, k in zip(y, values, known, strict=True):
            ax.text(v, yi, f" {v:.3g}" if k else " not measured", va="bottom", fontsize=8)
    ax_a.set_xlim(0.0, 105.0)
    ax_a.set_yticklabels([])
    fig.suptitle("Variants (hatched = left out of the bundle)", fontsize=10)
    return _save(fig, path)


def feature_importance_png(
    names: Sequence[str],
    mean: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    noise: np.ndarray,
    path: Path,
    top: int = 15,
) -> Path:
    """Horizontal bars of permutation importance (log-loss rise), largest first.

    Error bars are the confidence interval of the mean; features within noise are grey.
    """
    order = np.argsort(-mean, kind="stable")[:top]
    fig, ax = plt.subplots(figsize=(6.5, 0.35 * len(order) + 1.4))
    y = np.arange(len(order))
    m = mean[order]
    err = np.vstack([np.maximum(m - low[order], 0.0), np.maximum(high[order] - m, 0.0)])
    colors = ["lightgray" if noise[i] else "tab:green" for i in order]
    ax.barh(y, m, xerr=err, capsize=3, color=colors, edgecolor="black")
    ax.set_yticks(y, labels=[names[i] for i in order])
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("log-loss rise when shuffled (nats); grey = within noise")
    ax.set_title("Permutation feature importance, 95% interval")
    return _save(fig, path)


def roc_png(
    fpr: np.ndarray,
    tpr: np.ndarray,
    auc: float,
    path: Path,
    marks: dict[str, tuple[float, float]] | None = None,
) -> Path:
    """ROC curve on the full unit square with the chance diagonal; ``marks`` names points
    (e.g. the default and the F1-optimal threshold) as ``label -> (fpr, tpr)``."""
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.plot(
        fpr,
        tpr,
        color="tab:blue",
        linewidth=1.8,
        drawstyle="default",
        label=f"model (AUC {auc:.3f})",
    )
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="chance")
    for (label, (x, y)), marker in zip((marks or {}).items(), "os^D", strict=False):
        ax.plot([x], [y], marker=marker, linestyle="none", markersize=7, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate (recall)")
    ax.set_title("ROC curve (test split)")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def pr_png(
    recall: np.ndarray,
    precision: np.ndarray,
    ap: float,
    base_rate: float,
    path: Path,
    marks: dict[str, tuple[float, float]] | None = None,
) -> Path:
    """Precision-recall curve on the full unit square with the no-skill line (base rate);
    ``marks`` names points as ``label -> (recall, precision)``."""
    fig, ax = plt.subplots(figsize=(4.8, 4.6))
    ax.step(
        recall,
        precision,
        where="post",
        color="tab:blue",
        linewidth=1.8,
        label=f"model (AP {ap:.3f})",
    )
    ax.axhline(
        base_rate, color="black", linestyle="--", linewidth=1, label=f"no skill ({base_rate:.2f})"
    )
    for (label, (x, y)), marker in zip((marks or {}).items(), "os^D", strict=False):
        ax.plot([x], [y], marker=marker, linestyle="none", markersize=7, label=label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall curve (test split)")
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


def variant_reliability_png(curves: dict[str, Reliability], path: Path) -> Path:
    """Reliability curves of several variants on one diagonal: int8 calibration drift
    shows as a curve leaving the float model's."""
    fig, ax = plt.subplots(figsize=(5, 4.6))
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    for (name, rel), marker in zip(curves.items(), "os^Dv<>p*h", strict=False):
        centers = (rel.edges[:-1] + rel.edges[1:]) / 2
        filled = rel.counts > 0
        ax.plot(
            centers[filled],
            rel.accuracy[filled],
            marker=marker,
            markersize=4,
            linewidth=1,
            label=f"{name} (ECE {rel.ece:.3f})",
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("top-1 confidence (bin centre)")
    ax.set_ylabel("accuracy in bin")
    ax.set_title("Reliability per variant (test split)")
    ax.legend(loc="upper left", fontsize=7)
    return _save(fig, path)


def _display_image(x: np.ndarray) -> np.ndarray:
    """Model-domain HWC image -> something imshow can draw (min-max scaled per image)."""
    img = np.asarray(x, dtype=np.float64)
    lo, hi = float(img.min()), float(img.max())
    img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return img[..., 0] if img.shape[-1] == 1 else img


def saliency_grid_png(
    images: np.ndarray,
    maps: np.ndarray,
    titles: Sequence[str],
    path: Path,
    mistakes: Sequence[bool] | None = None,
) -> Path:
    """Pairs of (input, occlusion heat-map over the input) per sample, in a grid.

    ``images`` is ``[n, H, W, C]`` (model domain), ``maps`` ``[n, H, W]``: how much the
    predicted class's score fell when that region was hidden (red = the model looked here).
    ``mistakes`` flags misclassified samples; their titles are drawn in red.
    """
    n = len(images)
    cols = min(4, max(1, n))
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, 2 * cols, figsize=(2.2 * 2 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k in range(n):
        r, c = divmod(k, cols)
        img = _display_image(images[k])
        cmap = "gray" if img.ndim == 2 else None
        axes[r, 2 * c].imshow(img, cmap=cmap, interpolation="nearest")
        wrong = bool(mistakes[k]) if mistakes is not None else False
        axes[r, 2 * c].set_title(titles[k], fontsize=8, color="tab:red" if wrong else "black")
        axes[r, 2 * c + 1].imshow(img, cmap=cmap, interpolation="nearest")
        m = maps[k]
        vmax = float(np.abs(m).max()) or 1.0
        axes[r, 2 * c + 1].imshow(
            m, cmap="bwr", vmin=-vmax, vmax=vmax, alpha=0.6, interpolation="nearest"
        )
        axes[r, 2 * c + 1].set_title("occlusion", fontsize=8)
    fig.suptitle("Occlusion saliency: red = hiding this region lowers the predicted score")
    return _save(fig, path)


def latency_comparison_png(rows: Sequence[dict[str, Any]], path: Path, title: str) -> Path:
    """Grouped bars per model file: our Python latency next to the runtimes' own tools.

    ``rows`` carry ``target`` and any of ``python_ms``, ``litert_benchmark_ms``,
    ``benchmark_app_ms`` (None = not measured).
    """
    series = [
        ("python_ms", "edgekit backend (Python)"),
        ("litert_benchmark_ms", "litert-benchmark"),
        ("benchmark_app_ms", "benchmark_app"),
    ]
    names = [str(r["target"]) for r in rows]
    x = np.arange(len(names))
    width = 0.8 / len(series)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(names) + 2), 4))
    for k, (key, label) in enumerate(series):
        vals = [float(r[key]) if r.get(key) is not None else np.nan for r in rows]
        ax.bar(x + (k - 1) * width, vals, width=width, label=label, edgecolor="black")
    ax.set_xticks(x, labels=names, rotation=30, ha="right")
    ax.set_ylabel("median latency (ms)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path)
