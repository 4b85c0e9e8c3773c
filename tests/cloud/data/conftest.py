"""Tiny on-disk datasets (CSV, npz, image folders) built fresh in tmp_path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def write_csv(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(text: str, name: str = "data.csv") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def image_folder(tmp_path: Path) -> Callable[..., Path]:
    """``root/<class>/<n>.png|jpg``; ``mode`` "L" or "RGB"; sizes vary on purpose."""

    def make(
        classes: tuple[str, ...] = ("cat", "dog"), per_class: int = 5, mode: str = "RGB"
    ) -> Path:
        rng = np.random.default_rng(1)
        root = tmp_path / "images"
        for ci, cls in enumerate(classes):
            (root / cls).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                shape = (10 + i, 14 + ci) + ((3,) if mode == "RGB" else ())
                arr = (rng.random(shape) * 255).astype(np.uint8)
                ext = "png" if i % 2 else "jpg"
                Image.fromarray(arr).convert(mode).save(root / cls / f"{i}.{ext}")
        return root

    return make
