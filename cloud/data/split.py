"""Deterministic stratified train/validation/test split."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.errors import DataError

DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)
MIN_PER_CLASS = 3  # one sample for each of train, validation and test


@dataclass(frozen=True)
class Split:
    """Sorted sample indices of each part; together they cover every sample exactly once."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def stratified_split(
    y: np.ndarray, seed: int, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
) -> Split:
    """Split each class on its own so every part keeps the class mix.

    Each class gives at least one sample to each part (so per-class metrics exist
    everywhere); the same ``y`` and ``seed`` always give the same split, independent of
    numpy's global state.
    """
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"split fractions must be three positive numbers summing to 1: {fractions}")
    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        n = len(idx)
        if n < MIN_PER_CLASS:
            raise DataError(f"class #{int(cls)} has {n} samples, fewer than {MIN_PER_CLASS}")
        idx = rng.permutation(idx)
        n_val = max(1, round(n * fractions[1]))
        n_test = max(1, round(n * fractions[2]))
        n_train = n - n_val - n_test
        if n_train < 1:  # tiny class: rounding took everything
            n_train, n_val, n_test = n - 2, 1, 1
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train : n_train + n_val])
        parts[2].append(idx[n_train + n_val :])
    train, val, test = (np.sort(np.concatenate(p)).astype(np.int64) for p in parts)
    return Split(train=train, val=val, test=test)
