"""Services the integration tests need: a laptop skips without them, CI fails."""

from __future__ import annotations

import os

import pytest


def in_ci() -> bool:
    """CI sets CI=true; EDGEKIT_REQUIRE_SERVICES=1 asks for the same strictness locally."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes") or bool(
        os.environ.get("EDGEKIT_REQUIRE_SERVICES")
    )


def need_service(ok: bool, what: str, *, module_level: bool = False) -> None:
    """Skip (on a laptop) or fail (in CI) when a service or tool a test needs is missing;
    ``module_level`` for a check at import time of a test module or conftest."""
    if ok:
        return
    if in_ci():
        pytest.fail(f"{what}: CI must provide it (see .ci/run)", pytrace=False)
    pytest.skip(what, allow_module_level=module_level)
