"""The baselines benchmark's tables: fixed content, CSVs the real loader reads row for row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cloud.bench.tabular_sets import TABLES, breast_cancer, load_tables, synthetic
from cloud.data.tabular import load_csv
from edge.errors import ConfigError


def test_every_table_round_trips_through_the_csv_loader(tmp_path: Path) -> None:
    for table in load_tables(list(TABLES)):
        ds = load_csv(table.write_csv(tmp_path / f"{table.name}.csv"))
        assert ds.feature_names == table.features
        np.testing.assert_array_equal(ds.x, table.x.astype(ds.x.dtype))  # row i is row i
        assert [ds.labels[i] for i in ds.y] == table.labels


def test_breast_cancer_keeps_its_string_labels() -> None:
    t = breast_cancer()
    assert sorted(set(t.labels)) == ["benign", "malignant"]
    assert t.x.shape == (569, 30) and "mean_radius" in t.features


def test_synthetic_is_the_same_every_time_with_20_features() -> None:
    a, b = synthetic(), synthetic()
    assert a.x.shape == (5000, 20) and len(set(a.labels)) == 3
    np.testing.assert_array_equal(a.x, b.x)
    assert a.labels == b.labels and synthetic(300).x.shape == (300, 20)


def test_unknown_names_are_refused_with_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"unknown dataset.*titanic.*choose from wine, iris"):
        load_tables(["iris", "titanic"])
    with pytest.raises(ConfigError, match=r"\(none given\)"):
        load_tables([])
