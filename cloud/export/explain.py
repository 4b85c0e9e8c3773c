"""Model-agnostic explanation aids: permutation feature importance and occlusion saliency.

Both only need ``predict_fn(x_model_domain) -> scores`` (a batch in, ``[n, classes]`` out),
so they explain the Keras model and any exported runtime variant alike, and they never look
inside the model. They batch their perturbed inputs so one call covers many perturbations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

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
    """Mean and standard deviation over repeats of the accuracy drop per feature."""

    names: list[str]
    mean: np.ndarray
    std: np.ndarray
    baseline_accuracy: float

    def ranked(self) -> list[tuple[str, float, float]]:
        """(name, mean drop, std) largest drop first."""
        order = np.argsort(-self.mean, kind="stable")
        return [(self.names[i], float(self.mean[i]), float(self.std[i])) for i in order]


def permutation_importance(
    predict_fn: PredictFn,
    x: np.ndarray,
    y: np.ndarray,
    *,
    feature_names: list[str] | None = None,
    n_repeats: int = 5,
    seed: int = 0,
    batch_size: int = 4096,
) -> FeatureImportance:
    """How much test accuracy falls when one feature column is shuffled (Breiman 2001).

    A feature the model ignores scores ~0; shuffling breaks its link to the label while
    keeping its distribution, so unlike zeroing it never feeds the model impossible values.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y)
    if x.ndim != 2:
        raise DataError(f"permutation importance needs [samples, features] input, got {x.shape}")
    if len(x) != len(y) or len(x) < 2:
        raise DataError(f"permutation importance needs >= 2 labelled samples, got {len(x)}")
    if n_repeats < 1:
        raise DataError(f"n_repeats must be at least 1, got {n_repeats}")
    n, d = x.shape
    names = list(feature_names) if feature_names is not None else [f"f{i}" for i in range(d)]
    if len(names) != d:
        raise DataError(f"{len(names)} feature names for {d} features")
    rng = np.random.default_rng(seed)
    baseline = float(np.mean(_predict(predict_fn, x, batch_size).argmax(axis=1) == y))
    drops = np.zeros((d, n_repeats))
    for j in range(d):
        # All repeats for this feature in one batch: [n_repeats * n, d].
        stacked = np.repeat(x[None], n_repeats, axis=0)
        for r in range(n_repeats):
            stacked[r, :, j] = x[rng.permutation(n), j]
        pred = _predict(predict_fn, stacked.reshape(-1, d), batch_size).argmax(axis=1)
        acc = (pred.reshape(n_repeats, n) == y[None]).mean(axis=1)
        drops[j] = baseline - acc
    return FeatureImportance(
        names=names, mean=drops.mean(axis=1), std=drops.std(axis=1), baseline_accuracy=baseline
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
