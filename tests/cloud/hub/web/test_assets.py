"""The fleet page's templates and static assets are found where the web package keeps them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import cloud.hub.web as web

ASSETS = Path(web.__file__).parent / "static"


@pytest.mark.parametrize(
    "asset", sorted(str(p.relative_to(ASSETS)) for p in ASSETS.rglob("*") if p.is_file())
)
def test_every_static_asset_is_served(client: Any, asset: str) -> None:
    r = client.get(f"/assets/{asset}")
    assert r.status_code == 200 and r.data == (ASSETS / asset).read_bytes()


def test_login_page_renders_from_the_web_templates(client: Any) -> None:
    r = client.get("/login")
    assert r.status_code == 200 and b'name="csrf_token"' in r.data
