from __future__ import annotations

import numpy as np

from cloud.data.dataset import Dataset
from cloud.data.fingerprint import fingerprint


def _ds(x: np.ndarray, y: list[int], labels: tuple[str, ...] = ("a", "b")) -> Dataset:
    return Dataset(
        x=x,
        y=np.asarray(y),
        labels=list(labels),
        kind="tabular",
        source="s",
        feature_names=["p", "q"],
    )


def test_stable_across_calls_and_dtypes() -> None:
    x = np.arange(8, dtype=np.float64).reshape(4, 2)
    fp = fingerprint(_ds(x, [0, 1, 0, 1]))
    assert fp.startswith("sha256:") and len(fp) == 7 + 64
    assert fingerprint(_ds(x.astype(np.float32), [0, 1, 0, 1])) == fp
    assert fingerprint(_ds(x.copy(order="F"), [0, 1, 0, 1])) == fp


def test_sensitive_to_values_labels_names_and_order() -> None:
    x = np.arange(8, dtype=np.float32).reshape(4, 2)
    base = fingerprint(_ds(x, [0, 1, 0, 1]))
    changed = x.copy()
    changed[3, 1] += 1e-3
    assert fingerprint(_ds(changed, [0, 1, 0, 1])) != base
    assert fingerprint(_ds(x, [0, 1, 1, 1])) != base
    assert fingerprint(_ds(x, [0, 1, 0, 1], ("a", "c"))) != base
    assert fingerprint(_ds(x[::-1].copy(), [1, 0, 1, 0])) != base
