"""edge/serving/server.py: the serial worker (shadow runs, MQTT requests), inference on the caller's
thread under the time limit, the watchdog that cancels overdue runs."""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.bundle import Slot, extract_bundle
from edge.contract import Manifest
from edge.errors import ConfigError, InputError
from edge.runtime import Predictor
from edge.serving import InferenceTimeoutError, LoadedModel, ModelServer, SerialWorker
from tests.edge.serving_fakes import BlockingPredictor, Outcomes, digit, served
from tests.waiting import wait_for


def test_calls_run_in_order_on_one_thread_and_return_results() -> None:
    worker = SerialWorker("test-inference")
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
    worker = SerialWorker("test-inference")
    try:

        def boom() -> None:
            raise ValueError("model exploded")

        with pytest.raises(ValueError, match="model exploded"):
            worker.wait(worker.submit(boom), 5.0)
        assert worker.wait(worker.submit(lambda: 42), 5.0) == 42
    finally:
        worker.stop()


def test_a_stuck_call_times_out_without_waiting_for_it() -> None:
    worker = SerialWorker("test-inference")
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


# ---------------------------------------------------------------- inference on the caller's thread


def test_inference_runs_on_the_callers_thread(digits_manifest: Manifest) -> None:
    predictor = BlockingPredictor()
    predictor.release.set()
    outcomes = Outcomes()
    server = ModelServer(outcomes, timeout=5.0)
    try:
        server.swap(served(digits_manifest, predictor))
        assert server.predict(digit()).index == 3
        assert predictor.threads == [threading.current_thread().name]
        assert outcomes.predictions == 1 and outcomes.errors == []
    finally:
        server.close()


def test_an_interruptible_run_is_cancelled_at_the_time_limit(digits_manifest: Manifest) -> None:
    predictor = BlockingPredictor(cancellable=True)
    outcomes = Outcomes()
    server = ModelServer(outcomes, timeout=0.05)
    try:
        server.swap(served(digits_manifest, predictor))
        t0 = time.monotonic()
        with pytest.raises(InferenceTimeoutError, match=r"0\.05 s limit"):
            server.predict(digit())
        # cancelled by the watchdog (polling every limit/4), not released after 10 s
        assert time.monotonic() - t0 < 5.0
        assert predictor.cancelled == 1 and outcomes.errors == ["timeout"]
    finally:
        server.close()


def test_callers_behind_a_stuck_run_time_out_and_the_fallback_fires(
    digits_manifest: Manifest,
) -> None:
    predictor = BlockingPredictor(cancellable=False)  # like LiteRT: cannot be interrupted
    outcomes = Outcomes()
    fell_back: list[float] = []
    server = ModelServer(
        outcomes,
        timeout=0.05,
        fallback_min_inferences=3,
        fallback_window=10,
        on_fallback=lambda _m, rate: fell_back.append(rate),
    )
    stuck_result: list[BaseException] = []

    def stuck_call() -> None:
        try:
            server.predict(digit())
        except BaseException as exc:
            stuck_result.append(exc)

    try:
        server.swap(served(digits_manifest, predictor))
        stuck = threading.Thread(target=stuck_call)
        stuck.start()
        wait_for(lambda: predictor.threads)
        for _ in range(3):  # each waits at most the limit for the busy model
            t0 = time.monotonic()
            with pytest.raises(InferenceTimeoutError, match="still busy"):
                server.predict(digit())
            assert time.monotonic() - t0 < 2.0
        assert fell_back and fell_back[0] == 1.0
        assert predictor.cancelled >= 1  # asked (at every poll); the runtime cannot
        predictor.release.set()  # the stuck run returns late: still a timeout
        stuck.join(5)
        assert isinstance(stuck_result[0], InferenceTimeoutError)
        assert outcomes.errors == ["timeout"] * 4 and outcomes.predictions == 0
        assert server.predict(digit()).index == 3  # and the model serves again
    finally:
        predictor.release.set()
        server.close()


def test_the_watchdog_cancels_overdue_calls_until_they_end() -> None:
    from edge.serving.watchdog import Watchdog

    predictor = BlockingPredictor(cancellable=True)
    dog = Watchdog(lambda: 60.0)  # polled by hand below
    try:
        late, early = dog.watch(predictor), dog.watch(predictor)
        late.arm(100.0)
        early.arm(200.0)
        assert dog.check(now=50.0) == 0 and predictor.cancelled == 0
        assert dog.check(now=150.0) == 1 and predictor.cancelled == 1
        # still running at the next poll: asked again (a cancel can land between two runs
        # of one call), but it is not newly overdue
        assert dog.check(now=160.0) == 0 and predictor.cancelled == 2
        assert late.disarm() is True and early.disarm() is False
        assert dog.check(now=300.0) == 0 and predictor.cancelled == 2  # disarmed: left alone
        late.arm(400.0)  # the next call on the same watch starts clean
        assert dog.check(now=350.0) == 0 and late.disarm() is False
    finally:
        dog.stop()


def test_a_failing_cancel_does_not_stop_the_watchdog() -> None:
    from edge.serving.watchdog import Watchdog

    class Broken:
        def cancel(self) -> bool:
            raise RuntimeError("runtime refused")

    dog = Watchdog(lambda: 60.0)
    try:
        watch = dog.watch(Broken())
        watch.arm(1.0)
        assert dog.check(now=2.0) == 1
        assert watch.disarm() is True
    finally:
        dog.stop()


def test_the_watchdog_thread_fires_on_a_hung_call_and_forgets_dropped_watches() -> None:
    """The watcher thread itself (not a hand-made poll) cancels a call that hangs past its
    deadline; a watch nobody holds any more (its model was dropped) is not polled."""
    from edge.serving.watchdog import Watchdog

    predictor = BlockingPredictor(cancellable=True)
    dog = Watchdog(lambda: 0.005)
    try:
        watch = dog.watch(predictor)
        watch.arm(time.monotonic() + 0.02)
        wait_for(lambda: predictor.cancelled >= 1)
        assert watch.disarm() is True
        dropped = dog.watch(predictor)
        del dropped
        assert len(dog._watches) == 1
    finally:
        dog.stop()


def test_a_stuck_worker_hands_its_queue_to_a_successor() -> None:
    worker = SerialWorker("stuck")
    successor = SerialWorker("successor")
    release = threading.Event()
    try:
        worker.submit(lambda: release.wait(10))
        wait_for(lambda: worker.busy_for() > 0.0)

        def job(i: int) -> tuple[int, str]:
            return i, threading.current_thread().name

        queued = [worker.submit(functools.partial(job, i)) for i in range(3)]
        assert worker.pending() == 3
        assert worker.hand_over(successor) == 3
        assert [SerialWorker.wait(c, 5.0) for c in queued] == [(i, "successor") for i in range(3)]
        assert worker.busy_for() > 0.0 and successor.busy_for() == 0.0
    finally:
        release.set()
        successor.stop()


def test_the_direct_path_feeds_the_same_input_to_a_shadow(digits_manifest: Manifest) -> None:
    from tests.edge.serving_fakes import FillingPredictor

    served_model, candidate = FillingPredictor(), FillingPredictor()
    server = ModelServer(Outcomes(), timeout=5.0)
    try:
        server.swap(served(digits_manifest, served_model))
        assert server.current is not None and server.current.direct
        report: list[dict[str, object]] = []
        shadow = threading.Thread(
            target=lambda: report.append(
                server.shadow(served(digits_manifest, candidate), inputs=2, timeout=10)
            )
        )
        shadow.start()
        wait_for(lambda: server._shadow is not None)
        for pixel in (5, 7):
            raw = np.zeros((8, 8, 1), np.float32)
            raw.flat[pixel] = 16.0
            assert server.predict(raw).index == pixel  # filled in place, then run
        shadow.join(10)
        assert report and report[0]["inputs"] == 2 and report[0]["agreement"] == 1.0
        # the candidate got a copy of each prepared input, not the reused tensor buffer
        assert [int(np.argmax(x)) for x in candidate.seen] == [5, 7]
        with pytest.raises(InputError):  # out of range: the generic checks reject it
            server.predict(np.full((8, 8, 1), 99.0, np.float32))
    finally:
        server.close()


# ------------------------------------------------------------------ input range guard

MODELS = Path(__file__).resolve().parents[3] / "models"


@pytest.fixture(scope="module")
def tabular(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    if not (MODELS / "tabular.ekb").exists():
        pytest.skip("models/tabular.ekb not built")
    dest = tmp_path_factory.mktemp("guard") / "bundle"  # the slot's bundle_dir
    return dest, extract_bundle(MODELS / "tabular.ekb", dest, MODELS / "dev-signing.pub")


def _guarded_server(tabular: tuple[Path, Manifest], **guard: Any) -> tuple[ModelServer, Outcomes]:
    dest, manifest = tabular
    outcomes = Outcomes()
    server = ModelServer(outcomes, **guard)
    predictor = Predictor.open(dest, manifest, "onnxruntime", "fp32")
    server.swap(
        LoadedModel(Slot("tabular", 1, dest.parent, {}), manifest, predictor, "onnxruntime", "fp32")
    )
    return server, outcomes


def _typical(manifest: Manifest, **changes: float) -> dict[str, float]:
    mean = manifest.preprocessing["mean"]
    return {**dict(zip(manifest.preprocessing["features"], mean, strict=True)), **changes}


def test_warn_serves_an_absurd_value_with_a_warning_and_counts_it(
    tabular: tuple[Path, Manifest],
) -> None:
    server, outcomes = _guarded_server(tabular)
    try:
        assert server.predict(_typical(tabular[1])).warnings == ()
        pred = server.predict(_typical(tabular[1], mean_radius=1e30))
        assert len(pred.warnings) == 1 and "'mean_radius' = 1e+30" in pred.warnings[0]
        assert pred.to_dict()["warnings"] == list(pred.warnings)
        assert outcomes.out_of_range == [["mean_radius"]] and outcomes.rejections == []
        assert outcomes.predictions == 2
    finally:
        server.close()


def test_refuse_and_off_and_switching_at_run_time(tabular: tuple[Path, Manifest]) -> None:
    server, outcomes = _guarded_server(tabular, input_guard="refuse")
    absurd = _typical(tabular[1], worst_area=-1e9)
    try:
        with pytest.raises(InputError) as info:
            server.predict(absurd)
        assert info.value.code == "range" and "'worst_area'" in str(info.value)
        assert outcomes.rejections == ["range"] and outcomes.out_of_range == [["worst_area"]]
        assert outcomes.predictions == 0
        server.configure(input_guard="off")
        assert server.predict(absurd).warnings == ()
        server.configure(input_guard="warn", input_guard_margin=100.0)  # a very wide margin
        assert server.predict(_typical(tabular[1], worst_area=-1.0)).warnings == ()
        with pytest.raises(ConfigError, match="input guard"):
            server.configure(input_guard="block")
        assert server.input_guard == "warn"  # a refused setting changes nothing
    finally:
        server.close()


def test_models_without_ranges_are_served_unguarded(digits_manifest: Manifest) -> None:
    model = served(digits_manifest, BlockingPredictor())
    assert model.ranges is None and model.guard("refuse", 0.25) is None
