"""OpenVINO backend (CPU device).

Reads the IR ``.xml`` with its ``.bin`` beside it (same stem). The CPU plugin runs a
static shape faster than a dynamic one, so the model is compiled once per input shape
seen (batch size; batch 1 at load, others on demand, a few cached), each with its own
infer request. The fast path (``infer``) writes the batch straight into the request's
input tensor memory, runs the request, and returns a copy of its output tensor: no
input dict, no output dict, no dynamic-shape bookkeeping. A graph whose batch cannot be
reshaped runs in slices of its own batch size.

``infer_generic`` is the plain ``request.infer({0: x})`` call (copy in, results dict out)
on the same compiled model; the equivalence tests compare the two. (A dynamic-batch
compile of the same IR is *not* bit-identical: the CPU plugin picks other kernels.)

``infer_stream`` is the throughput mode: a second compile with ``PERFORMANCE_HINT``
THROUGHPUT (several CPU streams) fed by an ``AsyncInferQueue``, results in input order.

NNCF int8 models keep float I/O (FakeQuantize inside), so integer I/O is converted only
if the graph really has it, the input quantised straight into the input tensor. On CPUs
with bf16 instructions (AVX512_BF16, AMX) the plugin runs float models in bf16 unless
told otherwise (``INFERENCE_PRECISION_HINT``); ``describe()`` reports what it uses.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import Artifact
from edge.errors import BackendError, RuntimeMissingError
from edge.runtime.backends.base import RuntimeInfo
from edge.runtime.backends.quant import (
    artifact_quant,
    check_batch,
    quantize_into,
    run_batch,
    score_converter,
)

RUNTIME = "openvino"
DEVICE = "CPU"
INFO = RuntimeInfo(
    name=RUNTIME,
    title="OpenVINO",
    suffix=".xml",
    packages=(("openvino", ("openvino",)),),
    extra="openvino",
    wheels=(("x86_64", "openvino"), ("aarch64", "openvino")),  # docs/runtimes.md
)
MAX_SHAPES = 4  # compiled input shapes kept (each holds its own compiled graph)
_EMPTY: dict[int, Any] = {}
# OpenVINO quantises (its FakeQuantize, a converted ONNX QuantizeLinear) as
# round(x / scale + zero_point): the same integers go into an integer-input graph.
_OV_ROUNDING = {"zero_point_first": True}


def _ov() -> Any:
    try:
        return importlib.import_module("openvino")
    except ImportError as exc:
        raise RuntimeMissingError(f"OpenVINO is not installed; {INFO.install_hint}") from exc


def _version(ov: Any) -> str:
    return str(getattr(ov, "__version__", None) or ov.get_version()).split("-")[0]


def probe() -> dict[str, Any]:
    ov = _ov()
    devices = list(ov.Core().available_devices)
    return {"available": DEVICE in devices, "version": _version(ov), "devices": devices}


def create(**options: Any) -> OpenVINOBackend:
    return OpenVINOBackend(**options)


class _Compiled:
    """One input shape compiled: its request and views of the request's own tensors."""

    __slots__ = ("compiled", "input", "output", "request", "scratch")

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.input: np.ndarray = self.request.get_input_tensor(0).data
        self.output: np.ndarray = self.request.get_output_tensor(0).data
        kind = self.input.dtype.kind
        self.scratch = np.empty(self.input.shape, np.float32) if kind in "iu" else None


class OpenVINOBackend:
    """One IR model compiled for the CPU per input shape. A shape's request is taken out
    of its one-slot free list (``list.pop`` is atomic) and put back; a call that finds it
    taken by another thread runs on a new request of the same compiled model."""

    runtime = RUNTIME

    def __init__(self, threads: int | None = None, **_ignored: Any) -> None:
        if threads is not None and threads < 1:
            raise BackendError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        self._ov = _ov()
        self._model: Any = None
        self._free: dict[tuple[int, ...], list[_Compiled]] = {}  # shape -> [slot] when free
        self._slots: dict[tuple[int, ...], _Compiled] = {}
        self._throughput: dict[tuple[int, ...], Any] = {}
        self._lock = threading.Lock()  # compiling a new shape
        self._convert_out: Callable[[np.ndarray], np.ndarray] | None = None
        # The request's own infer, without the public wrapper's input dispatch and
        # results dict (~1 us a call); the public method if a release renames it.
        base = getattr(getattr(self._ov, "_pyopenvino", None), "InferRequest", None)
        self._run = getattr(base, "infer", None)

    def load(self, model_path: Path, artifact: Artifact | None = None) -> None:
        ov, path = self._ov, Path(model_path)
        self._core = ov.Core()
        try:
            model = self._core.read_model(str(path))
        except Exception as exc:
            raise BackendError(f"OpenVINO cannot read {path.name}: {exc}") from exc
        if len(model.inputs) != 1:
            raise BackendError(f"{path.name}: expected 1 input, model has {len(model.inputs)}")
        self._name = path.name
        pshape = model.inputs[0].get_partial_shape()
        dims = [d.get_length() if d.is_static else -1 for d in pshape]
        self._sample_shape = tuple(dims[1:])
        self._batch = dims[0]  # -1: any batch; else fixed until a reshape succeeds
        self._model, self._free, self._slots, self._throughput = model, {}, {}, {}
        self._config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if self.threads:
            self._config["INFERENCE_NUM_THREADS"] = self.threads
        in_type = model.inputs[0].get_element_type().get_type_name()
        out_type = model.outputs[0].get_element_type().get_type_name()
        self._in_q = self._out_q = None
        if in_type in ("i8", "u8"):
            in_q = artifact_quant(artifact.inputs if artifact else [], "input", path.name)
            self._in_q = (*in_q, "int8" if in_type == "i8" else "uint8")
        if out_type in ("i8", "u8"):
            self._out_q = artifact_quant(artifact.outputs if artifact else [], "output", path.name)
        self._convert_out = score_converter(out_type == "f32", self._out_q)
        if all(d > 0 for d in self._sample_shape):  # ready before any call: batch 1, or the
            fixed = self._batch not in (-1, 1) and self._fixed_batch()  # graph's own batch
            self._compile((self._batch if fixed else 1, *self._sample_shape))

    # -- the fast path -------------------------------------------------------------------

    def infer(self, x: np.ndarray) -> np.ndarray:
        try:
            free = self._free[x.shape]
        except (KeyError, AttributeError, TypeError):
            return self._infer_new_shape(x)
        try:
            slot = free.pop()
        except IndexError:  # another thread runs this shape now
            return self.infer_generic(x)
        try:
            if slot.scratch is None:
                slot.input[...] = x
            else:
                assert self._in_q is not None
                quantize_into(_f32(x), *self._in_q[:2], slot.input, slot.scratch, **_OV_ROUNDING)
            if self._run is not None:
                self._run(slot.request, _EMPTY, True, True)
            else:
                slot.request.infer()
            convert = self._convert_out
            return slot.output.copy() if convert is None else convert(slot.output)
        except Exception as exc:
            raise BackendError(f"OpenVINO inference failed: {exc}") from exc
        finally:
            free.append(slot)

    def _infer_new_shape(self, x: Any) -> np.ndarray:
        """A shape not compiled yet: check it, compile it (or, for a graph whose batch is
        baked in, run in slices of that batch)."""
        if self._model is None:
            raise BackendError("OpenVINO backend used before load()")
        arr = check_batch(x, self._sample_shape)
        if self._batch not in (-1, arr.shape[0]) and self._fixed_batch():
            return run_batch(self.infer, arr, self._batch, "OpenVINO")
        with self._lock:
            if arr.shape not in self._slots:
                self._compile(arr.shape)
        return self.infer(arr)

    def _fixed_batch(self) -> bool:
        """Whether the graph refuses another batch size (then ``self._batch`` is its own)."""
        try:
            self._model.clone().reshape({0: self._ov.PartialShape([-1, *self._sample_shape])})
        except Exception:
            return True
        self._batch = -1
        return False

    def _static(self, shape: tuple[int, ...]) -> Any:
        """A copy of the model with its input reshaped to ``shape``."""
        model = self._model.clone()
        if (
            tuple(
                d.get_length() if d.is_static else -1 for d in model.inputs[0].get_partial_shape()
            )
            != shape
        ):
            model.reshape({0: self._ov.PartialShape(list(shape))})
        return model

    def _compile(self, shape: tuple[int, ...]) -> None:
        """Compile the model for one static input shape (caller holds the lock or loads)."""
        try:
            compiled = self._core.compile_model(self._static(shape), DEVICE, self._config)
        except Exception as exc:
            raise BackendError(f"OpenVINO cannot compile {self._name} for {DEVICE}: {exc}") from exc
        if len(self._slots) >= MAX_SHAPES:  # evict the oldest, never batch size 1
            oldest = next((s for s in self._slots if s[0] != 1), next(iter(self._slots)))
            del self._slots[oldest], self._free[oldest]
        slot = _Compiled(compiled)
        self._slots[shape] = slot
        self._free[shape] = [slot]

    # -- the reference path ----------------------------------------------------------------

    def infer_generic(self, x: np.ndarray) -> np.ndarray:
        """The plain ``request.infer({0: x})`` call on the shape's compiled model (on a
        request of its own), batch as given: the reference for the tests."""
        if self._model is None:
            raise BackendError("OpenVINO backend used before load()")
        arr = check_batch(x, self._sample_shape)
        if self._batch not in (-1, arr.shape[0]) and self._fixed_batch():
            return run_batch(self.infer_generic, arr, self._batch, "OpenVINO")
        with self._lock:
            if arr.shape not in self._slots:
                self._compile(arr.shape)
            compiled = self._slots[arr.shape].compiled
        return self._infer_on(compiled.create_infer_request(), arr)

    def _infer_on(self, request: Any, x: np.ndarray) -> np.ndarray:
        feed = self._quantized(x) if self._in_q else x
        try:
            out = np.array(request.infer({0: feed})[0])
        except Exception as exc:
            raise BackendError(f"OpenVINO inference failed: {exc}") from exc
        return out if self._convert_out is None else self._convert_out(out)

    def _quantized(self, x: np.ndarray) -> np.ndarray:
        """A new integer array of ``x`` (the slow paths), rounded as OpenVINO rounds."""
        assert self._in_q is not None
        out = np.empty(np.shape(x), self._in_q[2])
        quantize_into(
            _f32(x), *self._in_q[:2], out, np.empty(out.shape, np.float32), **_OV_ROUNDING
        )
        return out

    @property
    def compiled_shapes(self) -> list[tuple[int, ...]]:
        """Input shapes compiled now (for the latency path), oldest first."""
        return list(self._slots)

    # -- throughput mode -------------------------------------------------------------------

    def infer_stream(self, batches: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Scores of each batch, in order, with several batches in flight at once on a
        THROUGHPUT compile of the first batch's shape; a batch of another shape (a
        stream's short tail) waits for those in flight and runs on the latency path."""
        if self._model is None:
            raise BackendError("OpenVINO backend used before load()")
        queue: Any = None
        order = _InOrder(self._convert_out)
        try:
            for batch in batches:
                arr = check_batch(batch, self._sample_shape)
                if queue is None:
                    shape, queue = arr.shape, self._queue(arr.shape)
                    queue.set_callback(order.finished)
                if arr.shape != shape:  # the tail: after everything before it
                    queue.wait_all()
                    yield from order.ready()
                    order.done[order.sent] = self.infer(arr)
                else:
                    feed = self._quantized(arr) if self._in_q else arr
                    order.held[order.sent] = feed
                    try:
                        queue.start_async({0: feed}, order.sent, share_inputs=True)
                    except Exception as exc:
                        raise BackendError(f"OpenVINO inference failed: {exc}") from exc
                order.sent += 1
                yield from order.ready()
            if queue is not None:
                queue.wait_all()
            yield from order.ready()
        finally:
            if queue is not None:
                with contextlib.suppress(Exception):
                    queue.wait_all()  # no request may outlive the inputs it shares

    def _queue(self, shape: tuple[int, ...]) -> Any:
        """An AsyncInferQueue over a THROUGHPUT compile of ``shape`` (compiled once)."""
        with self._lock:
            compiled = self._throughput.get(shape)
            if compiled is None:
                config = {**self._config, "PERFORMANCE_HINT": "THROUGHPUT"}
                try:
                    compiled = self._core.compile_model(self._static(shape), DEVICE, config)
                except Exception as exc:
                    raise BackendError(
                        f"OpenVINO cannot compile {self._name} for {DEVICE}: {exc}"
                    ) from exc
                self._throughput = {shape: compiled}  # one stream shape kept
        jobs = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        return self._ov.AsyncInferQueue(compiled, max(1, jobs))

    # -- the rest of the protocol ------------------------------------------------------------

    def cancel(self) -> bool:
        """Cancel the infer requests: a running ``infer`` raises; an idle one is unaffected.
        OpenVINO checks the flag only between its parallel tasks: a model compiled for one
        thread runs to the end (False)."""
        for slot in list(self._slots.values()):
            slot.request.cancel()
        return self._threads_used() != 1

    def _first(self) -> Any:
        return next(iter(self._slots.values())).compiled if self._slots else None

    def _threads_used(self) -> int | None:
        with contextlib.suppress(Exception):
            return int(self._first().get_property("INFERENCE_NUM_THREADS"))
        return self.threads

    def describe(self) -> dict[str, Any]:
        info = {
            "runtime": RUNTIME,
            "version": _version(self._ov),
            "device": DEVICE,
            "threads": self._threads_used(),
        }
        with contextlib.suppress(Exception):
            precision = self._first().get_property("INFERENCE_PRECISION_HINT")
            info["inference_precision"] = str(getattr(precision, "type_name", precision))
        return info

    def close(self) -> None:
        with self._lock:
            self._free, self._slots, self._throughput = {}, {}, {}
            self._model = None


class _InOrder:
    """Results of a stream's async requests (finished in any order), handed out in the
    order the batches were sent; a request's error is raised in the consumer's thread."""

    def __init__(self, convert: Callable[[np.ndarray], np.ndarray] | None) -> None:
        self.convert = convert
        self.done: dict[int, np.ndarray | BaseException] = {}
        self.held: dict[int, np.ndarray] = {}  # inputs shared with requests still running
        self.sent = self.taken = 0

    def finished(self, request: Any, index: int) -> None:
        """The queue's callback (an OpenVINO thread): copy the scores out."""
        try:
            out = request.get_output_tensor(0).data
            self.done[index] = out.copy() if self.convert is None else self.convert(out)
        except BaseException as exc:
            self.done[index] = exc
        self.held.pop(index, None)

    def ready(self) -> Iterator[np.ndarray]:
        while self.taken in self.done:
            got = self.done.pop(self.taken)
            self.taken += 1
            if isinstance(got, BaseException):
                raise BackendError(f"OpenVINO inference failed: {got}") from got
            yield got


def _f32(x: np.ndarray) -> np.ndarray:
    return x if x.dtype == np.float32 else np.asarray(x, dtype=np.float32)
