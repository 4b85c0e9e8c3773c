"""The in-memory dataset every source loader produces and every later step consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Kind = Literal["image", "tabular"]


@dataclass
class Dataset:
    """Raw samples plus what is needed to describe them to the device.

    ``x`` holds *raw* values (before model scaling): ``[N, H, W, C]`` for images with values
    inside ``raw_range``, ``[N, F]`` for tabular data. ``y`` holds class indices into
    ``labels``. ``skipped`` lists inputs that could not be read (e.g. broken image files).
    ``groups`` (with ``group_column``) holds one group name per sample, never a feature;
    ``excluded_columns`` names the columns the user kept out of the features.
    """

    x: np.ndarray
    y: np.ndarray
    labels: list[str]
    kind: Kind
    source: str
    feature_names: list[str] | None = None
    raw_range: tuple[float, float] | None = None
    color: str | None = None  # "grayscale" | "rgb" for images
    skipped: list[str] = field(default_factory=list)
    groups: np.ndarray | None = None
    group_column: str | None = None
    excluded_columns: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def class_counts(self) -> dict[str, int]:
        """Samples per class name, in label order (classes with no samples count 0)."""
        counts = np.bincount(self.y, minlength=self.n_classes)
        return {name: int(c) for name, c in zip(self.labels, counts, strict=True)}
