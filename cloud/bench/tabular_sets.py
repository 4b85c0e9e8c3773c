"""The baselines benchmark's small tables, written as the CSV files a user would train on.

Wine, iris and breast cancer come with scikit-learn (no download); breast cancer keeps its
string labels ("malignant"/"benign") so the CSV path with text labels is exercised. The
synthetic set is ``make_classification`` with 20 features and a fixed seed, big enough
(5000 rows) that its test split is not dominated by a handful of rows.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import ConfigError

SYNTHETIC_SEED = 0
LABEL_COLUMN = "label"


@dataclass(frozen=True)
class Table:
    """One dataset: raw feature rows, string labels, and the column names of its CSV."""

    name: str
    x: np.ndarray  # float64, (rows, features)
    labels: list[str]  # one per row
    features: list[str]

    def write_csv(self, path: Path) -> Path:
        """One header row (features, then ``label``) and one row per sample, in order:
        row ``i`` of the file is row ``i`` of ``x``, which the benchmark relies on."""
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow([*self.features, LABEL_COLUMN])
            for row, label in zip(self.x, self.labels, strict=True):
                w.writerow([repr(float(v)) for v in row] + [label])
        return path


def _column(name: str) -> str:
    """A plain CSV column name (``mean radius`` -> ``mean_radius``)."""
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def _from_bunch(name: str, loader: Callable[[], object]) -> Table:
    bunch = loader()
    x = np.asarray(bunch.data, dtype=np.float64)  # type: ignore[attr-defined]
    names = [str(n) for n in bunch.target_names]  # type: ignore[attr-defined]
    labels = [names[int(t)] for t in bunch.target]  # type: ignore[attr-defined]
    features = [_column(str(f)) for f in bunch.feature_names]  # type: ignore[attr-defined]
    return Table(name, x, labels, features)


def wine() -> Table:
    from sklearn.datasets import load_wine

    return _from_bunch("wine", load_wine)


def iris() -> Table:
    from sklearn.datasets import load_iris

    return _from_bunch("iris", load_iris)


def breast_cancer() -> Table:
    from sklearn.datasets import load_breast_cancer

    return _from_bunch("breast_cancer", load_breast_cancer)


def synthetic(n_samples: int = 5000) -> Table:
    """20 features (8 informative, 4 redundant), 3 classes, seed fixed: the same every run."""
    from sklearn.datasets import make_classification

    x, y = make_classification(
        n_samples=n_samples,
        n_features=20,
        n_informative=8,
        n_redundant=4,
        n_classes=3,
        random_state=SYNTHETIC_SEED,
    )
    return Table(
        "synthetic",
        np.asarray(x, dtype=np.float64),
        [f"class_{int(t)}" for t in y],
        [f"x{i:02d}" for i in range(x.shape[1])],
    )


TABLES: dict[str, Callable[[], Table]] = {
    "wine": wine,
    "iris": iris,
    "breast_cancer": breast_cancer,
    "synthetic": synthetic,
}


def load_tables(names: list[str]) -> list[Table]:
    """The named tables in the order given; an unknown name is refused with the choices."""
    unknown = [n for n in names if n not in TABLES]
    if unknown or not names:
        raise ConfigError(
            f"unknown dataset(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(TABLES)}"
        )
    return [TABLES[n]() for n in names]
