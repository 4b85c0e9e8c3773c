"""The inference thread's hand-off (edge/serving.py _Worker): results, errors, time limit."""

from __future__ import annotations

import functools
import threading
import time

import pytest

from edge.serving import _Worker


def test_calls_run_in_order_on_one_thread_and_return_results() -> None:
    worker = _Worker("test-inference")
    try:
        seen: list[tuple[int, str]] = []

        def job(i: int) -> int:
            seen.append((i, threading.current_thread().name))
            return i

        calls = [worker.submit(functools.partial(job, i)) for i in range(20)]
        assert [worker.wait(c, 5.0) for c in calls] == list(range(20))
        assert [i for i, _ in seen] == list(range(20))
        assert {name for _, name in seen} == {"test-inference"}
    finally:
        worker.stop()


def test_an_exception_reaches_the_caller_and_the_thread_keeps_serving() -> None:
    worker = _Worker("test-inference")
    try:

        def boom() -> None:
            raise ValueError("model exploded")

        with pytest.raises(ValueError, match="model exploded"):
            worker.wait(worker.submit(boom), 5.0)
        assert worker.wait(worker.submit(lambda: 42), 5.0) == 42
    finally:
        worker.stop()


def test_a_stuck_call_times_out_without_waiting_for_it() -> None:
    worker = _Worker("test-inference")
    release = threading.Event()
    try:
        call = worker.submit(lambda: release.wait(10))
        t0 = time.perf_counter()
        with pytest.raises(TimeoutError):
            worker.wait(call, 0.05)
        assert time.perf_counter() - t0 < 2.0
    finally:
        release.set()
        worker.stop()
