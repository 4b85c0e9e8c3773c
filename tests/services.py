"""Services the integration tests need: a laptop skips without them, CI fails."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    """CI sets CI=true; EDGEKIT_REQUIRE_SERVICES=1 asks for the same strictness locally."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or bool(
        os.environ.get("EDGEKIT_REQUIRE_SERVICES")
    )


def need_service(ok: bool, what: str) -> None:
    """Skip (on a laptop) or fail (in CI) when a service or tool a test needs is missing."""
    if ok:
        return
    if in_ci():
        pytest.fail(f"{what}: CI must provide it (see .ci/run)", pytrace=False)
    pytest.skip(what)
