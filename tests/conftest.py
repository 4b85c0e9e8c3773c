"""Session-wide rules: the unit tier stays free of TensorFlow, and in CI a missing service
fails the run instead of skipping its tests."""

from __future__ import annotations

import sys

import pytest

UNIT_TIER = "not slow and not integration"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    markexpr = session.config.getoption("markexpr", "") or ""
    if markexpr.strip() == UNIT_TIER and "tensorflow" in sys.modules:
        sys.stderr.write(
            "\nerror: the unit tier imported TensorFlow; mark the test that needs it slow\n"
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
