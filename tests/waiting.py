"""Waiting for something a background thread, process or broker will make true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(
    pred: Callable[[], Any], timeout: float = 20.0, what: str = "condition", interval: float = 0.02
) -> Any:
    """Poll ``pred`` until it returns something truthy and return that; fail the test with
    an AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
