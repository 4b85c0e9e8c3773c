"""Group columns: names kept as read, missing values grouped, id-like columns refused."""

from __future__ import annotations

import re

import numpy as np
import pytest

from cloud.data.groups import MAX_GROUPS, MISSING_GROUP, group_counts, group_values
from edge.errors import DataError


def test_strings_keep_their_spelling_and_missing_values_get_their_own_group() -> None:
    g = group_values(["north", " south ", "", "north", "nan"], "site", "d.csv")
    assert g.dtype.kind == "U"
    assert g.tolist() == ["north", "south", MISSING_GROUP, "north", MISSING_GROUP]
    assert group_counts(g) == {MISSING_GROUP: 2, "north": 2, "south": 1}


def test_numbers_become_their_decimal_names() -> None:
    assert group_values(np.array([1, 2, 1]), "g", "x.npz").tolist() == ["1", "2", "1"]
    floats = group_values(np.array([1.0, np.nan, 2.5, 1.0]), "g", "x.npz")
    assert floats.tolist() == ["1", MISSING_GROUP, "2.5", "1"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([f"id{i}" for i in range(20)], "different value in every one of the 20 rows"),
        (
            [f"g{i % (MAX_GROUPS + 1)}" for i in range(200)],
            f"51 distinct values, more than {MAX_GROUPS}",
        ),
        (["a", "a", "a"], "single value ('a')"),
        (["a" * 101, "b", "b"], "longer than 100 characters"),
    ],
)
def test_unusable_group_columns_are_refused(values: list[str], message: str) -> None:
    with pytest.raises(DataError, match=re.escape(message)):
        group_values(values, "site", "d.csv")


def test_a_2d_or_object_array_is_refused() -> None:
    with pytest.raises(DataError, match="must be 1-D"):
        group_values(np.zeros((3, 2)), "g", "x.npz")
    with pytest.raises(DataError, match="strings or numbers"):
        group_values(np.array([1 + 1j, 2j]), "g", "x.npz")
