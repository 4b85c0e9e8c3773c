"""Model-agnostic explanation aids: permutation feature importance and occlusion saliency.

Both only need ``predict_fn(x_model_domain) -> scores`` (a batch in, ``[n, classes]`` out),
so they explain the Keras model and any exported runtime variant alike, and they never look
inside the model. They batch their perturbed inputs so one call covers many perturbations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cloud.export.metrics import sample_log_loss
from edge.errors import DataError

PredictFn = Callable[[np.ndarray], np.ndarray]


def _predict(fn: PredictFn, x: np.ndarray, batch_size: int) -> np.ndarray:
    out = [np.asarray(fn(x[i : i + batch_size])) for i in range(0, len(x), batch_size)]
    scores = np.concatenate(out, axis=0) if out else np.zeros((0, 0))
    if scores.ndim != 2 or len(scores) != len(x):
        raise DataError(
            f"predict function returned shape {scores.shape} for {len(x)} inputs; "
            "expected [samples, classes]"
        )
    return scores


@dataclass(frozen=True)
class FeatureImportance:
    """Per feature: how much the log-loss rises when its column is shuffled.

    ``mean`` is the rise averaged over rows and repeats (nats; 0 = the model ignores it),
    ``std`` its spread over the repeats, ``low``/``high`` a confidence interval of the mean
    (Student t over the per-row rises, so it reflects both the rows and the shuffles), and
    ``noise`` marks features whose importance cannot be told from zero. ``accuracy_drop``
    is the mean accuracy lost, kept as the more familiar but much coarser companion.
    """

    names: list[str]
    mean: np.ndarray
    std: np.ndarray
    low: np.ndarray
    high: np.ndarray
    noise: np.ndarray
    accuracy_drop: np.ndarray
    baseline_loss: float
    baseline_accuracy: float
    n_rows: int
    n_repeats: int
    confidence: float

    def ranked(self) -> list[int]:
        """Feature indices, most important (largest log-loss rise) first."""
        return [int(i) for i in np.argsort(-self.mean, kind="stable")]


def permutation_importance(
    predict_fn: PredictFn,
    x: np.ndarray,
    y: np.ndarray,
    *,
    feature_names: list[str] | None = None,
    n_repeats: int = 10,
    seed: int = 0,
    confidence: float = 0.95,
    batch_size: int = 4096,
) -> FeatureImportance:
    """Rise of the log-loss when one feature column is shuffled (Breiman 2001, Fisher 2019).

    Log-loss instead of accuracy: on a few dozen rows accuracy moves in steps of one row,
    so most features score exactly 0 with a spread above the mean; the log-loss sees every
    change of confidence. Shuffling keeps the feature's distribution, so unlike zeroing it
    never feeds the model impossible values. A feature is within noise when the interval's
    lower end is at or below 0 or the mean is under twice the spread over repeats.
    """
    from scipy.stats import t as student_t

    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim != 2:
        raise DataError(f"permutation importance needs [samples, features] input, got {x.shape}")
    if len(x) != len(y) or len(x) < 2:
        raise DataError(f"permutation importance needs >= 2 labelled samples, got {len(x)}")
    if isinstance(n_repeats, bool) or not isinstance(n_repeats, int) or n_repeats < 2:
        raise DataError(f"n_repeats must be an integer of at least 2, got {n_repeats!r}")
    if not 0.0 < confidence < 1.0:
        raise DataError(f"confidence must be between 0 and 1, got {confidence}")
    n, d = x.shape
    names = list(feature_names) if feature_names is not None else [f"f{i}" for i in range(d)]
    if len(names) != d:
        raise DataError(f"{len(names)} feature names for {d} features")
    base_scores = _predict(predict_fn, x, batch_size)
    if base_scores.shape[1] <= int(y.max()) or int(y.min()) < 0:
        raise DataError(
            f"labels go up to {int(y.max())} but the model has {base_scores.shape[1]} scores"
        )
    base_loss = sample_log_loss(base_scores, y)
    base_acc = float(np.mean(base_scores.argmax(axis=1) == y))
    rng = np.random.default_rng(seed)
    rise = np.zeros((d, n_repeats))  # mean rise per repeat
    row_rise = np.zeros((d, n))  # per row, averaged over repeats
    acc_drop = np.zeros(d)
    for j in range(d):
        # All repeats for this feature in one batch: [n_repeats * n, d].
        stacked = np.tile(x, (n_repeats, 1))
        for r in range(n_repeats):
            stacked[r * n : (r + 1) * n, j] = x[rng.permutation(n), j]
        scores = _predict(predict_fn, stacked, batch_size)
        loss = sample_log_loss(scores, np.tile(y, n_repeats)).reshape(n_repeats, n) - base_loss
        rise[j] = loss.mean(axis=1)
        row_rise[j] = loss.mean(axis=0)
        acc = (scores.argmax(axis=1).reshape(n_repeats, n) == y[None]).mean()
        acc_drop[j] = base_acc - acc
    mean = rise.mean(axis=1)
    std = rise.std(axis=1, ddof=1)
    half = student_t.ppf(0.5 + confidence / 2, n - 1) * row_rise.std(axis=1, ddof=1) / np.sqrt(n)
    low, high = mean - half, mean + half
    return FeatureImportance(
        names=names,
        mean=mean,
        std=std,
        low=low,
        high=high,
        noise=(low <= 0) | (mean < 2 * std),
        accuracy_drop=acc_drop,
        baseline_loss=float(base_loss.mean()),
        baseline_accuracy=base_acc,
        n_rows=n,
        n_repeats=n_repeats,
        confidence=confidence,
    )


def occlusion_saliency(
    predict_fn: PredictFn,
    images: np.ndarray,
    *,
    patch: int | None = None,
    stride: int | None = None,
    fill: float | None = None,
    target: np.ndarray | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Per-pixel drop of the target class score when a square patch hides it (Zeiler & Fergus).

    ``images`` is ``[n, H, W, C]`` in the model domain. The target class is the model's own
    prediction unless ``target`` gives one per image. Each pixel's value is the mean drop over
    every patch position covering it: positive = evidence for the class. ``patch`` defaults
    to ~1/4 of the shorter side, ``stride`` to half the patch, ``fill`` to each image's mean.
    Returns ``[n, H, W]`` float32.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise DataError(f"occlusion saliency needs [n, H, W, C] images, got shape {images.shape}")
    n, h, w, _ = images.shape
    p = patch if patch is not None else max(1, min(h, w) // 4)
    s = stride if stride is not None else max(1, p // 2)
    if p < 1 or s < 1 or p > min(h, w):
        raise DataError(f"patch {p} / stride {s} do not fit {h}x{w} images")
    tops = list(range(0, h - p + 1, s))
    lefts = list(range(0, w - p + 1, s))
    if tops[-1] != h - p:
        tops.append(h - p)  # cover the bottom edge too
    if lefts[-1] != w - p:
        lefts.append(w - p)
    positions = [(t, le) for t in tops for le in lefts]
    base = _predict(predict_fn, images, batch_size)
    cls = base.argmax(axis=1) if target is None else np.asarray(target, dtype=np.int64)
    if cls.shape != (n,):
        raise DataError(f"target must hold one class per image, got shape {cls.shape}")
    maps = np.zeros((n, h, w), dtype=np.float64)
    for k in range(n):
        value = float(images[k].mean()) if fill is None else fill
        batch = np.repeat(images[k][None], len(positions), axis=0)
        for i, (t, le) in enumerate(positions):
            batch[i, t : t + p, le : le + p, :] = value
        drop = base[k, cls[k]] - _predict(predict_fn, batch, batch_size)[:, cls[k]]
        total = np.zeros((h, w))
        cover = np.zeros((h, w))
        for i, (t, le) in enumerate(positions):
            total[t : t + p, le : le + p] += drop[i]
            cover[t : t + p, le : le + p] += 1
        maps[k] = total / np.maximum(cover, 1)
    return maps.astype(np.float32)


def pick_examples(y_true: np.ndarray, per_class: int, max_total: int, seed: int = 0) -> np.ndarray:
    """Indices of up to ``per_class`` samples of each class, at most ``max_total`` in all,
    in class order, so a saliency grid shows every class it can afford."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y_true)
    shuffled = {c: rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)}
    picked: list[int] = []
    for rnd in range(per_class):  # round-robin over classes, so a tight budget spans them
        for members in shuffled.values():
            if rnd < len(members) and len(picked) < max_total:
                picked.append(int(members[rnd]))
    return np.array(sorted(picked, key=lambda i: (y[i], i)), dtype=np.int64)


def pick_mistakes(
    y_true: np.ndarray, y_pred: np.ndarray, max_total: int, seed: int = 0
) -> np.ndarray:
    """Indices of up to ``max_total`` misclassified samples, spread over the true classes
    (round-robin), so the saliency grid shows what the model looked at when it was wrong."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape:
        raise DataError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    wrong = np.flatnonzero(t != p)
    if not len(wrong) or max_total < 1:
        return np.zeros(0, dtype=np.int64)
    return wrong[pick_examples(t[wrong], len(wrong), max_total, seed)]
