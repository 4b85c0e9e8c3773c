"""Fixtures: the demo's three digits versions as real logistic regressions (v2 good, v3
trained on shuffled labels, v4 fit on clean plus shifted digits), signed, and the held-out
digits the field data comes from."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.hub.app import create_app
from cloud.hub.config import HubConfig
from cloud.hub.http.auth import create_api_token
from tests.cloud.hub.champion import field
from tests.cloud.hub.pg_schema import throwaway_schema


@dataclass(frozen=True)
class Digits:
    train_x: np.ndarray
    train_y: np.ndarray
    held_x: np.ndarray
    held_y: np.ndarray
    weights: dict[int, tuple[np.ndarray, np.ndarray]]  # version -> (W, b)
    test_accuracy: dict[int, float]  # on the clean held-out digits


@pytest.fixture(scope="session")
def digits() -> Digits:
    tx, ty, hx, hy = field.digits_split()
    weights = {
        2: field.fit(tx, ty),
        3: field.fit(tx, ty, shuffle=True),
        4: field.fit(np.concatenate([tx, field.shifted(tx)]), np.concatenate([ty, ty])),
    }
    acc = {v: field.accuracy(w, b, hx, hy) for v, (w, b) in weights.items()}
    return Digits(tx, ty, hx, hy, weights, acc)


@pytest.fixture(scope="session")
def versions(
    digits: Digits, keys: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[int, Path]:
    """Signed bundles v2, v3 and v4; v4's lineage names the field dataset digits-field@1."""
    out = tmp_path_factory.mktemp("champion-bundles")
    lineage = {4: {"datasets": [
        {"role": "original", "source": "digits", "samples": 1797},
        {"role": "field", "name": "digits-field", "version": 1, "samples": 0},
    ]}}  # fmt: skip
    return {
        v: field.bundle(
            out / f"digits-v{v}.ekb", keys[0], v, w, b, digits.test_accuracy[v], lineage.get(v)
        )
        for v, (w, b) in digits.weights.items()
    }


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def any_app(request: Any, tmp_path: Path, keys: tuple[Path, Path]) -> Iterator[Any]:
    """A hub app on SQLite, and (integration tier) on the machine's PostgreSQL."""
    with _db_url(request.param) as url:
        app = create_app(HubConfig(data_dir=tmp_path / "hub", db_url=url, trusted_key=keys[1],
                                   background=False, testing=True))  # fmt: skip
        try:
            yield app
        finally:
            app.extensions["edgekit_hub"].stop()
            app.extensions["edgekit_hub"].db.dispose()


def _db_url(kind: str) -> Any:
    import contextlib

    if kind == "sqlite":
        return contextlib.nullcontext(None)
    return throwaway_schema("champion")


@pytest.fixture
def auth(any_app: Any) -> dict[str, dict[str, str]]:
    out = {}
    with any_app.extensions["edgekit_hub"].db.session() as s:
        for role in ("viewer", "operator"):
            out[role] = {"Authorization": f"Bearer {create_api_token(s, role, role)}"}
    return out
