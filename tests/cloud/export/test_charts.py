"""Charts tell the truth: axes start at 0 (or span the unit square), intervals are drawn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.export import charts
from cloud.export.metrics import reliability

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every figure a chart function saves, kept for inspection (the PNG is still written)."""
    seen: list[Any] = []
    save = charts._save

    def keep(fig: Any, path: Path) -> Path:
        fig.canvas.draw()  # autoscaling settles here, as in savefig
        seen.append(fig)
        return save(fig, path)

    monkeypatch.setattr(charts, "_save", keep)
    return seen


def _rows() -> list[dict[str, Any]]:
    return [
        {"target": "litert-fp32", "accuracy": 0.99, "latency_ms": 0.2, "included": True},
        {"target": "litert-int8", "accuracy": 0.97, "latency_ms": 0.1, "included": True},
        {"target": "onnxruntime-int8", "accuracy": None, "latency_ms": 0.3, "included": False},
    ]


def test_variant_accuracy_axis_starts_at_zero_even_when_all_are_close(
    figures: list[Any], tmp_path: Path
) -> None:
    intervals = {"litert-fp32": (0.95, 0.998), "litert-int8": (0.92, 0.99)}
    path = charts.variants_png(_rows(), tmp_path / "v.png", intervals)
    assert path.read_bytes()[:8] == PNG_MAGIC
    ax_lat, ax_acc = figures[0].axes
    assert ax_acc.get_xlim()[0] == 0.0 and ax_acc.get_xlim()[1] >= 100.0
    assert ax_lat.get_xlim()[0] == 0.0
    kinds = {type(c).__name__ for c in ax_acc.containers}
    assert "ErrorbarContainer" in kinds  # the intervals are drawn
    texts = [t.get_text() for t in ax_acc.texts]
    assert " not measured" in texts  # a missing accuracy is not drawn as 0 %


def test_importance_chart_shows_zero_error_bars_and_greys_noise(
    figures: list[Any], tmp_path: Path
) -> None:
    mean = np.array([0.5, 0.01, -0.02])
    low, high = mean - 0.03, mean + 0.03
    noise = np.array([False, True, True])
    charts.feature_importance_png(["a", "b", "c"], mean, low, high, noise, tmp_path / "f.png")
    ax = figures[0].axes[0]
    lo, hi = ax.get_xlim()
    assert lo <= -0.05 and hi >= 0.53  # bars and their error bars are in view, 0 included
    colours = [tuple(np.round(p.get_facecolor(), 3)) for p in ax.patches]
    assert len(set(colours)) == 2  # relied-on and within-noise features differ


def test_curves_and_reliability_span_the_unit_square(figures: list[Any], tmp_path: Path) -> None:
    x = np.linspace(0, 1, 5)
    charts.roc_png(x, x**0.5, 0.8, tmp_path / "roc.png", {"default 0.5": (0.2, 0.6)})
    charts.pr_png(x, 1 - x / 2, 0.7, 0.4, tmp_path / "pr.png")
    rng = np.random.default_rng(0)
    s = rng.dirichlet([1, 1, 1], size=2000)
    rel = reliability(s, rng.integers(0, 3, 2000))
    charts.reliability_png(rel, tmp_path / "rel.png")
    charts.variant_reliability_png({"float": rel, "litert-int8": rel}, tmp_path / "vrel.png")
    for fig in figures:
        ax = fig.axes[0]
        assert ax.get_xlim() == (0.0, 1.0)
        assert ax.get_ylim()[0] == 0.0 and ax.get_ylim()[1] >= 1.0
    counts_ax = figures[2].axes[1]
    assert "log scale" in counts_ax.get_ylabel()  # 2,000 samples: log counts, and it says so


def test_saliency_grid_marks_mistakes_in_red(figures: list[Any], tmp_path: Path) -> None:
    imgs = np.random.default_rng(1).uniform(size=(2, 6, 6, 1)).astype(np.float32)
    maps = np.zeros((2, 6, 6), dtype=np.float32)
    charts.saliency_grid_png(imgs, maps, ["ok", "WRONG"], tmp_path / "s.png", [False, True])
    titles = {ax.get_title(): ax.title.get_color() for ax in figures[0].axes if ax.get_title()}
    assert titles["WRONG"] == "tab:red" and titles["ok"] == "black"
