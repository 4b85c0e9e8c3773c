"""Serving the active model: inference on the caller's thread, a time limit, shadowing,
health windows.

All inferences of the agent (MQTT, in-process API, HTTP, replay) go through
:meth:`ModelServer.predict`. The input is validated and the model runs on the caller's
thread, one call at a time per model (runtimes are not all thread-safe). Handing every call
to a dedicated inference thread cost ~0.5 ms per inference on a 2-vCPU VM (waking the
thread, then waking the caller), a quarter of a MobileNet inference, so the time limit is
enforced without a hand-off:

* a watchdog thread (edge/serving/watchdog.py) polls the calls in progress and, past
  their deadline, asks the runtime to stop (ONNX Runtime's terminate flag, OpenVINO's
  cancel); the interrupted call is answered with ``InferenceTimeoutError``, and so is one
  that returns late;
* a call that finds the model busy past the limit (a run the runtime cannot interrupt,
  LiteRT) gets ``InferenceTimeoutError`` without waiting longer; those errors raise the
  error rate, and the fallback moves serving to the last known good model.

Callers that must stay responsive whatever the model does (the MQTT dispatcher) pass
requests to a :class:`SerialWorker` of their own and replace it when it gets stuck.

The server also keeps, per served model, a recent error window (a model whose error rate
climbs above the threshold triggers ``on_fallback`` once) and a health window the updater
reads during probation, and it feeds live inputs to a shadow candidate when asked.

Tabular inputs pass the model's range guard (edge/runtime/guard.py) after preparation:
out-of-range features go to ``Observer.on_out_of_range``; mode ``warn`` serves them with
a warning on the prediction, ``refuse`` answers InputError code ``range``.
"""

from __future__ import annotations

import _thread
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from edge.bundle import Slot
from edge.contract import Manifest, ModelRef
from edge.errors import (
    BackendError,
    ContractError,
    EdgekitError,
    InferenceTimeoutError,
    InputError,
    NoModelError,
)
from edge.runtime import (
    DEFAULT_GUARD_MARGIN,
    DEFAULT_GUARD_MODE,
    FeatureRanges,
    Model,
    Prediction,
    Preparer,
    RangeGuard,
    runtime_loaded,
)
from edge.serving.watchdog import Watch, Watchdog

log = logging.getLogger(__name__)
_F32 = np.dtype(np.float32)
_DECLINED = np.empty((0,), dtype=np.float32)  # what _run_limited returns for a declined input


@dataclass
class LoadedModel:
    """A verified slot opened on the variant chosen by its self-test."""

    slot: Slot
    manifest: Manifest
    predictor: Model
    runtime: str
    precision: str
    selftest_latency_ms: float | None = None
    threads: int | None = None  # default: what the loaded model reports (Model.variant)
    # one inference at a time; a waiter gives up at the time limit (see ModelServer.predict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    prepare: Preparer = field(init=False, repr=False, compare=False)
    ranges: FeatureRanges | None = field(init=False, repr=False, compare=False)
    _guard: RangeGuard | None = field(init=False, default=None, repr=False, compare=False)
    # whether inputs can be prepared straight into the runtime's input tensor (fixed at load)
    direct: bool = field(init=False, repr=False, compare=False)
    # the time-limit watch of this model's (one) call in progress, made by the server
    watch: Watch | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.threads is None:
            self.threads = getattr(getattr(self.predictor, "variant", None), "threads", None)
        self.direct = bool(getattr(self.predictor, "fillable", False))
        self.prepare = Preparer(self.manifest)
        try:
            self.ranges = FeatureRanges.for_bundle(self.slot.bundle_dir, self.manifest)
        except ContractError as exc:  # a reference that does not fit: serve, unguarded
            log.error("input range guard off for %s: %s", self.slot.id, exc)
            self.ranges = None

    def guard(self, mode: str, margin: float) -> RangeGuard | None:
        """The range guard with these settings (built once per setting), None when the
        model has no training ranges or the guard is off."""
        if self.ranges is None or mode == "off":
            return None
        guard = self._guard
        if guard is None or guard.mode != mode or guard.margin != margin:
            guard = self._guard = RangeGuard(self.ranges, mode, margin)
        return guard

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> int:
        return self.manifest.version

    def ref(self) -> ModelRef:
        return ModelRef(self.name, self.version, self.runtime, self.precision, self.threads)

    def close(self) -> None:
        try:
            self.predictor.close()
        except Exception:  # closing must never take the agent down
            log.exception("closing %s failed", self.slot.id)


def _score_row(scores: np.ndarray) -> list[float]:
    """The first row of a ``[batch, classes]`` score array as a list, ``[]`` when the array
    has another shape or a value that is not finite. One numpy call (``tolist``): right
    after an inference numpy's own code is out of the caches, and each call costs ~10 us."""
    rows = scores.tolist()
    if type(rows) is not list or not rows or type(rows[0]) is not list:
        return []
    row: list[float] = rows[0]
    try:
        return row if row and all(map(math.isfinite, row)) else []
    except TypeError:  # more than two dimensions: rows of lists
        return []


class Observer(Protocol):
    """Where outcomes go (the agent's telemetry monitor)."""

    def on_input(self, x: np.ndarray) -> None:
        """A prepared one-sample batch about to run (called while it is still cached)."""

    def on_prediction(
        self, model: LoadedModel, prediction: Prediction, latency_ms: float, label: Any
    ) -> None: ...

    def on_error(self, kind: str) -> None: ...

    def on_rejection(self, code: str) -> None: ...

    def on_out_of_range(self, features: list[str]) -> None:
        """An input with ``features`` outside their training range (served or refused)."""


class Sampler(Protocol):
    """Where served predictions are offered for capture (the agent's edge.capture.Capture).
    Called on the inference thread: it decides quickly and calls ``model_input`` (the
    model-domain one-sample batch, prepared again if no copy was kept) only for an input it
    keeps. Set ``ModelServer.sampler`` to None while capture is off: then nothing is
    offered at all."""

    def offer(
        self,
        model: LoadedModel,
        prediction: Prediction,
        label: Any,
        model_input: Callable[[], np.ndarray],
    ) -> Any: ...

    def offer_disagreement(
        self,
        model: LoadedModel,
        candidate: LoadedModel,
        model_input: np.ndarray,
        served_index: int,
        candidate_scores: list[float],
    ) -> Any: ...


@dataclass
class HealthWindow:
    """Outcomes of the served model since it was swapped in (read during probation)."""

    started: float = field(default_factory=time.monotonic)
    inferences: int = 0
    errors: int = 0
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
    confidence_sum: float = 0.0

    def snapshot(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms, dtype=np.float64)
        total = self.inferences + self.errors
        return {
            "seconds": round(time.monotonic() - self.started, 3),
            "inferences": self.inferences,
            "errors": self.errors,
            "error_rate": self.errors / total if total else 0.0,
            "p95_ms": float(np.percentile(lat, 95)) if lat.size else None,
            "confidence_mean": self.confidence_sum / self.inferences if self.inferences else None,
        }


@dataclass
class ShadowRun:
    """One shadow run. Latencies per input: the candidate's inference alone, and the served
    model's answer to the same input as its caller saw it (preparation included, the
    latency telemetry reports), so a rollout can see what activating it would cost."""

    candidate: LoadedModel
    wanted: int
    seen: int = 0
    agreed: int = 0
    errors: int = 0
    candidate_ms: list[float] = field(default_factory=list)
    served_ms: list[float] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)

    def report(self) -> dict[str, Any]:
        return {
            "inputs": self.seen,
            "wanted": self.wanted,
            "agreement": round(self.agreed / self.seen, 4) if self.seen else None,
            "errors": self.errors,
            "candidate_latency_ms": _p50_p95(self.candidate_ms),
            "served_latency_ms": _p50_p95(self.served_ms),
        }


def _p50_p95(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    p50, p95 = np.percentile(np.asarray(values, dtype=np.float64), [50, 95])
    return {"p50": round(float(p50), 4), "p95": round(float(p95), 4)}


class _Call:
    """One submitted call: ``done`` is held until the worker has stored the outcome."""

    __slots__ = ("done", "error", "fn", "result")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn: Callable[[], Any] | None = fn
        self.done = _thread.allocate_lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None


_STOP = object()


class SerialWorker:
    """One daemon thread running submitted calls in order (shadow runs, MQTT requests).

    ``busy_since`` tells how long the current call has been running, so an owner can see
    a stuck worker and replace it (:meth:`hand_over` moves the calls still queued)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.busy_since: float | None = None  # time.monotonic() when the current call began
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any]) -> _Call:
        call = _Call(fn)
        self._queue.put(call)
        return call

    def pending(self) -> int:
        """Calls queued and not started yet."""
        return self._queue.qsize()

    def busy_for(self) -> float:
        """Seconds the current call has been running (0.0 when idle)."""
        since = self.busy_since
        return time.monotonic() - since if since is not None else 0.0

    @staticmethod
    def wait(call: _Call, timeout: float) -> Any:
        """The call's result or its exception; TimeoutError after ``timeout`` seconds."""
        if not call.done.acquire(True, timeout):
            raise TimeoutError
        if call.error is not None:
            raise call.error
        return call.result

    def stop(self) -> None:
        self._queue.put(_STOP)

    def hand_over(self, successor: SerialWorker) -> int:
        """Move the calls still queued here to ``successor`` and stop this worker once its
        current call returns (if ever); returns how many moved."""
        moved = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                successor._queue.put(item)
                moved += 1
        self.stop()
        return moved

    def _run(self) -> None:
        while (call := self._queue.get()) is not _STOP:
            self.busy_since = time.monotonic()
            try:
                call.result = call.fn()
            except BaseException as exc:
                call.error = exc
            self.busy_since = None
            call.fn = None  # let the input go
            call.done.release()


class ModelServer:
    """Serves the current model; thread-safe."""

    def __init__(
        self,
        observer: Observer,
        *,
        timeout: float = 5.0,
        fallback_error_rate: float = 0.5,
        fallback_window: int = 50,
        fallback_min_inferences: int = 20,
        on_fallback: Callable[[LoadedModel, float], None] | None = None,
        input_guard: str = DEFAULT_GUARD_MODE,
        input_guard_margin: float = DEFAULT_GUARD_MARGIN,
    ) -> None:
        RangeGuard.check_settings(input_guard, input_guard_margin)
        self.observer = observer
        self.timeout = timeout
        self.input_guard = input_guard
        self.input_guard_margin = input_guard_margin
        self.fallback_error_rate = fallback_error_rate
        self.fallback_min_inferences = fallback_min_inferences
        self.on_fallback = on_fallback
        self._lock = threading.Lock()
        self._model: LoadedModel | None = None
        self._outcomes: deque[bool] = deque(maxlen=fallback_window)  # True = error
        self._fallback_fired = False
        self._window = HealthWindow()
        self._shadow: ShadowRun | None = None
        self._shadow_worker: SerialWorker | None = None
        self.sampler: Sampler | None = None  # capture (edge/capture), None while off
        # polls 4x per limit (at most every 0.25 s): a call is cancelled within 1.25 limits
        self._watchdog = Watchdog(lambda: min(0.25, max(0.002, self.timeout / 4)))

    # ------------------------------------------------------------------ model handling

    @property
    def current(self) -> LoadedModel | None:
        return self._model

    def swap(self, model: LoadedModel | None) -> LoadedModel | None:
        """Serve ``model`` from the next request on; returns the previous one (not closed)."""
        with self._lock:
            previous, self._model = self._model, model
            self._outcomes.clear()
            self._fallback_fired = False
            self._window = HealthWindow()
        if model is not None:
            log.info("serving %s on %s-%s", model.slot.id, model.runtime, model.precision)
            runtime_loaded(model.runtime)  # the status now lists its devices
        return previous

    def health(self) -> dict[str, Any]:
        """Outcomes of the current model since it was swapped in."""
        with self._lock:
            return self._window.snapshot()

    def configure(self, **settings: Any) -> None:
        """Apply changed run-time settings (timeout, fallback thresholds, input guard)."""
        mode = settings.get("input_guard", self.input_guard)
        margin = settings.get("input_guard_margin", self.input_guard_margin)
        RangeGuard.check_settings(mode, margin)
        with self._lock:
            self.input_guard, self.input_guard_margin = mode, margin
            self.timeout = settings.get("timeout", self.timeout)
            self.fallback_error_rate = settings.get("fallback_error_rate", self.fallback_error_rate)
            self.fallback_min_inferences = settings.get(
                "fallback_min_inferences", self.fallback_min_inferences
            )
            window = settings.get("fallback_window")
            if window and window != self._outcomes.maxlen:
                self._outcomes = deque(self._outcomes, maxlen=window)

    def close(self) -> None:
        self._watchdog.stop()
        if self._shadow_worker is not None:
            self._shadow_worker.stop()

    # ------------------------------------------------------------------ inference

    def predict(self, raw: Any, label: Any = None) -> Prediction:
        """Validate, run and record one input. Raises InputError for a rejected input,
        BackendError (InferenceTimeoutError, NoModelError) when the model cannot answer."""
        model = self._model
        if model is None:
            raise NoModelError("no model installed yet")
        # Every line here runs on each inference, right before or after the model evicted
        # the CPU caches, where each function call and attribute costs several times its
        # warm price: hence the direct path inlined (no helper frames) and plain Python on
        # the (small) score row (every numpy call costs ~10 us, a list next to nothing).
        t0 = time.perf_counter()
        x: np.ndarray | None = None
        warning: str | None = None
        scores = _DECLINED
        if model.direct and model.prepare.fits(raw):
            kept: list[np.ndarray] = []
            fill_into, on_input, shadowed = model.prepare.fill, self.observer.on_input, self._shadow

            def fill(buffer: np.ndarray) -> bool:
                if not fill_into(raw, buffer):
                    return False  # a value outside the fast bounds: the generic path decides
                batch = buffer[None]
                try:  # = self._note_input(batch), inlined: drift, while the input is cached
                    on_input(batch)
                except Exception:
                    log.exception("recording an input failed")
                if shadowed is not None:
                    kept.append(batch.copy())  # the buffer is the runtime's: keep a copy
                return True

            scores = self._run_limited(model, model.predictor.fill_and_infer, fill)
            if kept:
                x = kept[0]
        if scores is _DECLINED:  # the generic path: prepare (or reject), then run
            x = prepared = self._prepare(model, raw)
            warning = self._guard(model, prepared)
            self._note_input(prepared)
            scores = self._run_limited(model, model.predictor.infer_model_domain, prepared)
        row = _score_row(scores)
        if not row:
            self._record_error(model, "bad_output")
            raise BackendError(f"model returned unusable scores of shape {scores.shape}")
        latency_ms = (time.perf_counter() - t0) * 1000.0
        index = max(range(len(row)), key=row.__getitem__)  # the first maximum, as argmax
        labels = model.manifest.labels
        prediction = Prediction(
            labels[index] if index < len(labels) else str(index),
            index,
            row,
            round(latency_ms, 4),
            (warning,) if warning else (),
        )
        with self._lock:  # = self._record_ok(model, latency_ms, row[index]), inlined
            if model is self._model:
                self._outcomes.append(False)
                window = self._window
                window.inferences += 1
                window.latencies_ms.append(latency_ms)
                window.confidence_sum += row[index]
        self.observer.on_prediction(model, prediction, latency_ms, label)
        if self.sampler is not None or self._shadow is not None:
            self._pass_on(model, prediction, label, x, raw, latency_ms)
        return prediction

    def _pass_on(
        self,
        model: LoadedModel,
        prediction: Prediction,
        label: Any,
        x: np.ndarray | None,
        raw: Any,
        latency_ms: float,
    ) -> None:
        """Offer a served prediction to capture, and its input to a shadow run."""
        if self.sampler is not None:
            self._offer(model, prediction, label, x, raw)
        shadow, index = self._shadow, prediction.index
        if shadow is not None and x is not None and not shadow.done.is_set():
            shadow_x = x
            self._shadow_submit(lambda: self._shadow_one(shadow, shadow_x, index, latency_ms))

    def predict_batch(self, raws: list[Any], labels: list[Any] | None = None) -> list[Prediction]:
        """Validate every input (an InputError names the sample at fault; nothing runs),
        then run them in one runtime call within the time limit and record each. The
        shadow candidate is not fed batches."""
        model = self._model
        if model is None:
            raise NoModelError("no model installed yet")
        if not raws:
            raise InputError("shape", "input batch is empty")
        t0 = time.perf_counter()
        parts, warnings = [], []
        for i, raw in enumerate(raws):
            try:
                x = self._prepare(model, raw)
                warnings.append(self._guard(model, x))
            except InputError as exc:
                raise InputError(exc.code, f"sample {i}: {exc}") from exc
            parts.append(x)
        batch = np.concatenate(parts) if len(parts) > 1 else parts[0]
        for i in range(len(parts)):
            self._note_input(batch[i : i + 1])
        scores = self._run_limited(model, model.predictor.infer_model_domain, batch)
        rows = scores.tolist() if scores.ndim == 2 and scores.shape[0] == len(parts) else []
        if not rows or not all(math.isfinite(v) for row in rows for v in row):
            self._record_error(model, "bad_output")
            raise BackendError(f"model returned unusable scores of shape {scores.shape}")
        latency_ms = (time.perf_counter() - t0) * 1000.0 / len(rows)
        names = model.manifest.labels
        out = []
        for i, row in enumerate(rows):
            index = max(range(len(row)), key=row.__getitem__)
            warning = warnings[i]
            prediction = Prediction(
                label=names[index] if index < len(names) else str(index),
                index=index,
                scores=row,
                latency_ms=round(latency_ms, 4),
                warnings=(warning,) if warning else (),
            )
            self._record_ok(model, latency_ms, row[index])
            self.observer.on_prediction(
                model, prediction, latency_ms, labels[i] if labels else None
            )
            if self.sampler is not None:
                self._offer(model, prediction, labels[i] if labels else None, batch[i : i + 1])
            out.append(prediction)
        return out

    def _offer(
        self, model: LoadedModel, prediction: Prediction, label: Any, x: Any, raw: Any = None
    ) -> None:
        """Offer one prediction to the sampler; ``x`` is the prepared input, or None when the
        direct path kept no copy (then ``raw``, the caller's array, is prepared again, and
        only if the sampler keeps it). Capture failing is never the caller's problem."""
        sampler = self.sampler
        if sampler is None:
            return
        try:
            sampler.offer(model, prediction, label, lambda: model.prepare(raw) if x is None else x)
        except Exception:
            log.exception("offering a sample for capture failed")

    def _offer_disagreement(
        self, candidate: LoadedModel, x: np.ndarray, served_index: int, scores: np.ndarray
    ) -> None:
        """A shadow candidate disagreed on ``x``: offer it (reason shadow_disagreement)."""
        sampler, model = self.sampler, self._model
        if sampler is None or model is None:
            return
        try:
            sampler.offer_disagreement(model, candidate, x, served_index, scores[0].tolist())
        except Exception:
            log.exception("offering a shadow disagreement for capture failed")

    def _note_input(self, x: np.ndarray) -> None:
        """Tell the observer (input drift); its failure is not the model's, nor the caller's."""
        try:
            self.observer.on_input(x)
        except Exception:
            log.exception("recording an input failed")

    def _prepare(self, model: LoadedModel, raw: Any) -> np.ndarray:
        """The model-domain one-sample batch for ``raw``; rejections counted and raised."""
        try:
            x = model.prepare(raw)
        except InputError as exc:
            self.observer.on_rejection(exc.code)
            raise
        except EdgekitError as exc:  # any other refusal of the input is still a rejection
            self.observer.on_rejection("invalid")
            raise InputError("invalid", str(exc)) from exc
        if x.shape[0] != 1:
            self.observer.on_rejection("shape")
            raise InputError("shape", f"expected one sample, got a batch of {x.shape[0]}")
        return x

    def _guard(self, model: LoadedModel, x: np.ndarray) -> str | None:
        """The range guard on a prepared sample: None when in range (two vectorised
        comparisons, no Python loop over features); else counted, and either the warning
        (``warn``) or InputError code ``range`` (``refuse``)."""
        guard = model.guard(self.input_guard, self.input_guard_margin)
        if guard is None:
            return None
        features, message = guard.check(x)
        if message is None:
            return None
        try:
            self.observer.on_out_of_range(features)
        except Exception:  # counting is not the caller's problem
            log.exception("recording an out-of-range input failed")
        if guard.refuses:
            self.observer.on_rejection("range")
            raise InputError("range", message)
        return message

    def _run_limited(
        self, model: LoadedModel, run: Callable[[Any], np.ndarray | None], arg: Any
    ) -> np.ndarray:
        """The model's scores from ``run(arg)`` (on this thread) within the time limit; an
        empty array when ``run`` declined the input (the direct path's ``fill``)."""
        timeout = self.timeout
        monotonic = time.monotonic
        deadline = monotonic() + timeout
        lock = model.lock
        # uncontended (the common case): no wait, so no need to look at the clock again
        if not lock.acquire(False):
            acquired = lock.acquire(True, timeout)
            if not acquired or monotonic() > deadline:  # (or got it only as the limit passed)
                if acquired:
                    lock.release()
                self._record_error(model, "timeout")
                raise InferenceTimeoutError(
                    f"the model is still busy with an earlier inference past the {timeout:g} s "
                    "limit"
                )
        watch = model.watch
        if watch is None or watch.owner is not self._watchdog:
            watch = model.watch = self._watchdog.watch(model.predictor)
        failure: Exception | None = None
        scores: np.ndarray | None = None
        try:
            watch.overdue = False  # = watch.arm(deadline), inlined: runs on every inference
            watch.deadline = deadline
            try:
                scores = run(arg)
            except Exception as exc:
                failure = exc
            finally:
                overdue = watch.disarm()
        finally:
            lock.release()
        if overdue or monotonic() > deadline:
            self._record_error(model, "timeout")
            raise InferenceTimeoutError(
                f"inference took longer than the {timeout:g} s limit"
            ) from failure
        if failure is not None:
            self._record_error(model, "runtime")
            raise BackendError(f"inference failed: {failure}") from failure
        if scores is None:
            return _DECLINED
        if type(scores) is np.ndarray and scores.dtype is _F32:
            return scores
        return np.asarray(scores, dtype=np.float32)

    def _shadow_submit(self, fn: Callable[[], Any]) -> None:
        """Shadow inferences run on their own thread, after the reply went out."""
        with self._lock:
            if self._shadow_worker is None:
                self._shadow_worker = SerialWorker("shadow")
            worker = self._shadow_worker
        worker.submit(fn)

    def _record_ok(self, model: LoadedModel, latency_ms: float, confidence: float) -> None:
        with self._lock:
            if model is not self._model:
                return
            self._outcomes.append(False)
            self._window.inferences += 1
            self._window.latencies_ms.append(latency_ms)
            self._window.confidence_sum += confidence

    def _record_error(self, model: LoadedModel, kind: str) -> None:
        self.observer.on_error(kind)
        fire = False
        with self._lock:
            if model is not self._model:
                return
            self._outcomes.append(True)
            self._window.errors += 1
            n = len(self._outcomes)
            rate = sum(self._outcomes) / n
            if (
                not self._fallback_fired
                and n >= max(1, self.fallback_min_inferences)
                and rate > self.fallback_error_rate
            ):
                self._fallback_fired = fire = True
        if fire and self.on_fallback is not None:
            log.error(
                "%s error rate %.2f above %.2f", model.slot.id, rate, self.fallback_error_rate
            )
            self.on_fallback(model, rate)

    # ------------------------------------------------------------------ shadow

    def shadow(self, candidate: LoadedModel, inputs: int, timeout: float) -> dict[str, Any]:
        """Run ``candidate`` on the next ``inputs`` live inputs next to the served model;
        returns agreement (share of equal top-1). Waits at most ``timeout`` seconds."""
        run = ShadowRun(candidate, inputs)
        with self._lock:
            self._shadow = run
        try:
            run.done.wait(timeout)
        finally:
            run.done.set()  # inputs still queued for it are skipped (see _shadow_one)
            with self._lock:
                self._shadow = None
        return run.report()

    def _shadow_one(
        self, run: ShadowRun, x: np.ndarray, served_index: int, served_ms: float
    ) -> None:
        if run.done.is_set():
            return
        t0 = time.perf_counter()
        try:
            with run.candidate.lock:
                scores = run.candidate.predictor.infer_model_domain(x)
            agree = int(np.argmax(scores[0])) == served_index
            if not agree and self.sampler is not None:
                self._offer_disagreement(run.candidate, x, served_index, scores)
        except Exception as exc:
            log.warning("shadow inference failed: %s", exc)
            run.errors += 1
            agree = False
        run.candidate_ms.append((time.perf_counter() - t0) * 1000.0)
        run.served_ms.append(served_ms)
        run.seen += 1
        run.agreed += int(agree)
        if run.seen >= run.wanted:
            run.done.set()
