"""The card's explanation aid: permutation importance (tables) or occlusion saliency (images).

Importance is measured on as many labelled rows as the run offers without training on
them: the validation and test splits together, topped up with a seeded subsample of the
training split when they hold fewer than ``MIN_IMPORTANCE_ROWS`` (the card says which rows).
Saliency shows correctly classified test images and, when there are any, mistakes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cloud.export import charts, explain
from cloud.export.card.text import pct, table
from edge.errors import DataError

MIN_IMPORTANCE_ROWS = 500
MAX_IMPORTANCE_ROWS = 2000
IMPORTANCE_REPEATS = 10
IMPORTANCE_TOP = 15
SALIENCY_CORRECT = 8
SALIENCY_MISTAKES = 4
SALIENCY_MAX_IMAGES = SALIENCY_CORRECT + SALIENCY_MISTAKES


@dataclass(frozen=True)
class ExplainRows:
    """Labelled model-domain rows for permutation importance, and what they are in words."""

    x: np.ndarray
    y: np.ndarray
    what: str


def importance_rows(
    x: dict[str, np.ndarray],
    y: dict[str, np.ndarray],
    seed: int = 0,
    minimum: int = MIN_IMPORTANCE_ROWS,
    maximum: int = MAX_IMPORTANCE_ROWS,
) -> ExplainRows:
    """Validation + test rows; a seeded training subsample tops them up to ``minimum``, and
    a seeded subsample cuts them down to ``maximum``. ``x``/``y`` map split names to arrays."""
    if minimum > maximum:
        raise DataError(f"importance rows: minimum {minimum} above maximum {maximum}")
    held = [s for s in ("val", "test") if s in x and len(x[s])]
    if not held:
        raise DataError("importance rows need a validation or test split")
    xs = np.concatenate([x[s] for s in held])
    ys = np.concatenate([y[s] for s in held])
    parts = " and ".join(f"{len(x[s])} {'validation' if s == 'val' else 'test'}" for s in held)
    what = f"the {parts} rows"
    rng = np.random.default_rng(seed)
    if len(xs) < minimum and "train" in x and len(x["train"]):
        take = min(minimum - len(xs), len(x["train"]))
        idx = np.sort(rng.choice(len(x["train"]), take, replace=False))
        xs = np.concatenate([xs, x["train"][idx]])
        ys = np.concatenate([ys, y["train"][idx]])
        what += (
            f" plus {take} training rows (seeded sample; the held-out splits are small, and "
            "importance on training rows shows what the model relies on, not what generalises)"
        )
    elif len(xs) > maximum:
        idx = np.sort(rng.choice(len(xs), maximum, replace=False))
        xs, ys = xs[idx], ys[idx]
        what = f"a seeded sample of {maximum} of {what}"
    return ExplainRows(x=xs, y=ys, what=what)


def importance_section(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    rows: ExplainRows,
    feature_names: list[str] | None,
    chart_dir: Path,
    seed: int,
) -> tuple[str, list[Path]]:
    x = np.asarray(rows.x)
    names = feature_names or [f"f{i}" for i in range(x.shape[1])]
    fi = explain.permutation_importance(
        predict_fn, x, rows.y, feature_names=names, n_repeats=IMPORTANCE_REPEATS, seed=seed
    )
    png = charts.feature_importance_png(
        fi.names,
        fi.mean,
        fi.low,
        fi.high,
        fi.noise,
        chart_dir / "feature_importance.png",
        top=IMPORTANCE_TOP,
    )
    order = fi.ranked()
    body = [
        (
            f"`{fi.names[i]}`",
            f"{fi.mean[i]:+.4f} ± {fi.std[i]:.4f}",
            f"[{fi.low[i]:+.4f}, {fi.high[i]:+.4f}]",
            f"{100 * fi.accuracy_drop[i]:+.2f}",
            "within noise" if fi.noise[i] else "**relied on**",
        )
        for i in order[:IMPORTANCE_TOP]
    ]
    noise = [fi.names[i] for i in order if fi.noise[i]]
    level = f"{100 * fi.confidence:g} %"
    text = (
        "## Explanation aid: permutation feature importance\n\n"
        f"How much the model's log-loss rises (in nats; baseline {fi.baseline_loss:.4f}, "
        f"accuracy {pct(fi.baseline_accuracy)}) when one feature's column is shuffled, on "
        f"{rows.what} ({fi.n_rows} rows), {fi.n_repeats} shuffles per feature: mean ± std "
        f"over the shuffles and a {level} interval of the mean (over rows and shuffles). "
        "The log-loss sees every change of confidence, where accuracy moves in whole rows. "
        "A feature is **within noise** when its interval reaches 0 or its mean is under "
        "twice its spread over shuffles: its effect cannot be told from the noise of "
        "shuffling and sampling (a reviewer should not read a ranking into it). Correlated "
        "features share the credit: shuffling one leaves its twins to carry the "
        "information, so a small rise does not prove a feature useless.\n\n"
        + table(
            (
                "feature",
                "log-loss rise (mean ± std)",
                f"{level} interval",
                "accuracy drop (points)",
                "verdict",
            ),
            body,
        )
    )
    if len(order) > IMPORTANCE_TOP:
        text += f"\n\n{len(order) - IMPORTANCE_TOP} more features are not shown."
    if noise:
        shown = ", ".join(f"`{n}`" for n in noise[:30]) + (", ..." if len(noise) > 30 else "")
        text += f"\n\nWithin noise ({len(noise)} of {len(order)}): {shown}."
    return text + f"\n\n![feature importance](charts/{png.name})", [png]


def saliency_section(
    predict_fn: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    pred: np.ndarray,
    labels: list[str],
    chart_dir: Path,
    seed: int,
) -> tuple[str, list[Path]]:
    right = np.flatnonzero(pred == y)
    wrong = explain.pick_mistakes(y, pred, SALIENCY_MISTAKES, seed)
    budget = SALIENCY_MAX_IMAGES - len(wrong)
    ok = right[explain.pick_examples(y[right], 1, budget, seed)] if len(right) else right
    idx = np.concatenate([ok, wrong]).astype(np.int64)
    if not len(idx):
        return "## Explanation aid: occlusion saliency\n\nNo test images to explain.", []
    images = x[idx]
    maps = explain.occlusion_saliency(predict_fn, images)
    mistakes = [bool(pred[i] != y[i]) for i in idx]
    titles = [
        f"{'WRONG: ' if m else ''}true {labels[y[i]]} / pred {labels[pred[i]]}"
        for i, m in zip(idx, mistakes, strict=True)
    ]
    png = charts.saliency_grid_png(images, maps, titles, chart_dir / "saliency.png", mistakes)
    h, w = images.shape[1:3]
    n_wrong = int(np.sum(pred != y))
    mistakes_text = (
        f"and {len(wrong)} of the {n_wrong} misclassified test images (titles in red, "
        '"WRONG"; the map explains the class the model wrongly chose)'
        if len(wrong)
        else "(the model made no mistake on the test split, so there are no mistakes to show)"
    )
    text = (
        f"## Explanation aid: occlusion saliency\n\n{len(ok)} correctly classified test "
        f"images (one per class) {mistakes_text}. Each is labelled with its true and "
        f"predicted class. A square patch of about a quarter of the {h}x{w} input was slid "
        "over the image and replaced by the image's mean; red marks regions whose hiding "
        "lowers the predicted class's score (the evidence the model uses), blue regions "
        "whose hiding raises it. Saliency that sits on the background rather than the "
        "object is a warning sign of a shortcut; on a mistake it shows what misled the "
        f"model.\n\n![occlusion saliency](charts/{png.name})"
    )
    return text, [png]
