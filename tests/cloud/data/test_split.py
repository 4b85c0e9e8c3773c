from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.data.split import MIN_PER_CLASS, stratified_split
from edge.errors import DataError


def test_same_seed_same_split_other_seed_other_split() -> None:
    y = np.repeat(np.arange(4), 50)
    a, b, c = stratified_split(y, 7), stratified_split(y, 7), stratified_split(y, 8)
    for part in ("train", "val", "test"):
        assert np.array_equal(getattr(a, part), getattr(b, part))
    assert not np.array_equal(a.test, c.test)


def test_split_is_70_15_15_per_class() -> None:
    y = np.repeat(np.arange(3), 100)
    s = stratified_split(y, 0)
    assert s.sizes() == {"train": 210, "val": 45, "test": 45}
    for part in (s.train, s.val, s.test):
        counts = np.bincount(y[part], minlength=3)
        assert counts.max() == counts.min()


@settings(max_examples=50, deadline=None)
@given(
    counts=st.lists(st.integers(MIN_PER_CLASS, 60), min_size=2, max_size=6),
    seed=st.integers(0, 2**31),
)
def test_split_partitions_and_every_class_is_everywhere(counts: list[int], seed: int) -> None:
    y = np.concatenate([np.full(n, i) for i, n in enumerate(counts)])
    np.random.default_rng(seed).shuffle(y)
    s = stratified_split(y, seed)
    everything = np.concatenate([s.train, s.val, s.test])
    assert sorted(everything.tolist()) == list(range(len(y)))
    for part in (s.train, s.val, s.test):
        assert set(y[part].tolist()) == set(range(len(counts)))


def test_class_below_minimum_and_bad_fractions_are_refused() -> None:
    with pytest.raises(DataError, match="fewer than 3"):
        stratified_split(np.array([0, 0, 0, 1, 1]), 0)
    with pytest.raises(DataError, match="fractions"):
        stratified_split(np.array([0, 1] * 5), 0, (0.5, 0.5, 0.5))
