"""ONNX Runtime backend (CPU execution provider).

Fast path (``infer``): per input shape seen (batch size, on demand, a few cached), numpy
buffers bound once to the session as its input and output (IOBinding over OrtValues that
wrap the buffers: ORT reads and writes them in place); a call writes the batch into the
bound input, runs, and returns a copy of the bound output. That is the fastest call
ORT allows from Python: ``session.run`` costs a dict of inputs, name lookups and a fresh
output array per call (about 2x on the microsecond-sized reference models).

``infer_generic`` is the plain ``session.run`` call; the equivalence tests compare the
two (the same numbers, and for integer inputs the same integers).

Static-QDQ/QOperator int8 models keep float32 inputs and outputs, so usually no
conversion is needed; a model whose graph input or output is itself int8/uint8 is
converted with the artifact's TensorSpec scale/zero-point (ONNX graph I/O carries no
quantisation info), the input quantised straight into the bound input buffer.

Session options: ``threads`` sets intra-op threads (one inter-op thread, sequential
execution, every graph optimisation). ``spinning`` (default: ORT's own, on) keeps the
intra-op threads busy-waiting for work after a run: lower latency for back-to-back calls,
at the price of CPU burnt between them that a 2-core device's other work (MQTT, input
decoding) could use; ``spinning=False`` gives it back (docs/runtimes.md).
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import Artifact
from edge.errors import BackendError, RuntimeMissingError
from edge.runtime.backends.base import RuntimeInfo
from edge.runtime.backends.quant import (
    artifact_quant,
    check_batch,
    dequantize,
    quantize,
    quantize_into,
    run_batch,
    score_converter,
)

RUNTIME = "onnxruntime"
INFO = RuntimeInfo(
    name=RUNTIME,
    title="ONNX Runtime",
    suffix=".onnx",
    packages=(("onnxruntime", ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino")),),
    extra="onnx",
    wheels=(("x86_64", "onnxruntime"), ("aarch64", "onnxruntime")),  # docs/runtimes.md
)
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
}
MAX_SHAPES = 4  # input shapes with bound buffers kept; batch size 1 is never evicted


_NOT_DEVICES = {"CPUExecutionProvider", "AzureExecutionProvider"}


def _ort() -> Any:
    try:
        return importlib.import_module("onnxruntime")
    except ImportError as exc:
        raise RuntimeMissingError(f"ONNX Runtime is not installed; {INFO.install_hint}") from exc


def probe() -> dict[str, Any]:
    ort = _ort()
    providers = list(ort.get_available_providers())
    # Remote/cloud providers (Azure) are not devices of this machine.
    devices = ["CPU"] + [
        p.removesuffix("ExecutionProvider") for p in providers if p not in _NOT_DEVICES
    ]
    return {
        "available": True,
        "version": ort.__version__,
        "devices": devices,
        "providers": providers,
    }


def create(**options: Any) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(**options)


def _dim(d: Any) -> int:
    return d if isinstance(d, int) and d > 0 else -1


def physical_cores() -> int:
    """Physical cores this process may run on: what ORT's default thread count is."""
    cpus = (
        os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    )
    cores = set()
    for cpu in cpus:
        try:
            siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


class _Bound:
    """One input shape's pre-bound I/O: the buffers the session reads and writes."""

    __slots__ = ("binding", "input", "output", "scratch", "values")

    def __init__(self, binding: Any, inp: np.ndarray, out: np.ndarray, values: tuple[Any, ...]):
        self.binding, self.input, self.output, self.values = binding, inp, out, values
        self.scratch = np.empty(inp.shape, np.float32) if inp.dtype.kind in "iu" else None


class OnnxRuntimeBackend:
    """One .onnx model in one InferenceSession. ``infer`` takes a shape's bound buffers
    out of their one-slot free list (``list.pop`` is atomic: cheaper than a lock) and puts
    them back; a call that finds them taken by another thread runs ``session.run``
    instead, which is thread-safe."""

    runtime = RUNTIME

    def __init__(
        self, threads: int | None = None, spinning: bool | None = None, **_ignored: Any
    ) -> None:
        if threads is not None and threads < 1:
            raise BackendError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        self.spinning = spinning
        self._ort = _ort()
        self._session: Any = None
        self._in_q: tuple[float, int, str] | None = None
        self._out_q: tuple[float, int] | None = None
        self._convert_out: Callable[[np.ndarray], np.ndarray] | None = None
        self._bound: dict[tuple[int, ...], list[_Bound]] = {}  # shape -> [slot] when free
        self._lock = threading.Lock()  # binding a new shape
        # One RunOptions for the bound runs: cancel() raises its terminate flag (and marks
        # it to be lowered before the next run); the generic path's run has its own.
        self._options: Any = None
        self._generic_options: Any = None
        self._raised = False

    def load(self, model_path: Path, artifact: Artifact | None = None) -> None:
        ort, name = self._ort, Path(model_path).name
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.threads:
            opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        if self.spinning is not None:
            opts.add_session_config_entry(
                "session.intra_op.allow_spinning", "1" if self.spinning else "0"
            )
        try:
            self._session = ort.InferenceSession(
                str(model_path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise BackendError(f"ONNX Runtime cannot load {name}: {exc}") from exc
        ins, outs = self._session.get_inputs(), self._session.get_outputs()
        if len(ins) != 1:
            raise BackendError(f"{name}: expected 1 input, model has {len(ins)}")
        self._in_name, self._out_name = ins[0].name, outs[0].name
        shape = [_dim(d) for d in ins[0].shape]
        self._batch = shape[0]
        self._sample_shape = tuple(shape[1:])
        in_type = _ORT_TYPES.get(ins[0].type)
        out_type = _ORT_TYPES.get(outs[0].type)
        if in_type is None or out_type is None:
            raise BackendError(f"{name}: unsupported tensor types {ins[0].type}/{outs[0].type}")
        self._in_dtype = in_type
        self._in_q = None
        self._out_q = None
        if in_type in ("int8", "uint8"):
            in_q = artifact_quant(artifact.inputs if artifact else [], "input", name)
            self._in_q = (*in_q, in_type)
        if out_type in ("int8", "uint8"):
            self._out_q = artifact_quant(artifact.outputs if artifact else [], "output", name)
        self._convert_out = score_converter(out_type == "float32", self._out_q)
        self._bound = {}
        self._options = ort.RunOptions()
        self._raised = False
        # The session's own run_with_iobinding: the public wrapper adds per-call checks
        # for WebGPU graph capture (~0.7 us, 18% of a digits call); fall back to it if
        # a future ORT renames the inner objects.
        inner: Any = getattr(self._session, "_sess", None)
        self._inner = hasattr(inner, "run_with_iobinding")
        self._run_bound = (inner if self._inner else self._session).run_with_iobinding
        if all(d > 0 for d in shape):
            self._bind(tuple(shape))  # the model's own static shape, ready before any call

    # -- the fast path -------------------------------------------------------------------

    def infer(self, x: np.ndarray) -> np.ndarray:
        try:
            free = self._bound[x.shape]
        except (KeyError, AttributeError, TypeError):
            return self._infer_unbound(x)
        try:
            slot = free.pop()
        except IndexError:
            return self.infer_generic(x)  # another thread uses the buffers right now
        try:
            if slot.scratch is None:
                slot.input[...] = x
            else:
                assert self._in_q is not None
                quantize_into(_f32(x), self._in_q[0], self._in_q[1], slot.input, slot.scratch)
            if self._raised:
                self._raised = False
                self._options.terminate = False
            self._run_bound(slot.binding, self._options)
            convert = self._convert_out
            return slot.output.copy() if convert is None else convert(slot.output)
        except Exception as exc:
            raise BackendError(f"ONNX Runtime inference failed: {exc}") from exc
        finally:
            free.append(slot)

    def _infer_unbound(self, x: Any) -> np.ndarray:
        """A shape without bound buffers yet: check it, bind it (if the cache has room or
        can evict) and run; a fixed-batch model runs in slices of its own batch."""
        if self._session is None:
            raise BackendError("ONNX Runtime backend used before load()")
        arr = check_batch(x, self._sample_shape)
        if self._batch not in (-1, arr.shape[0]):
            return run_batch(self.infer, arr, self._batch, "ONNX Runtime")
        with self._lock:
            if arr.shape not in self._bound:
                self._bind(arr.shape)
        return self.infer(arr)

    def _bind(self, shape: tuple[int, ...]) -> None:
        """Allocate and bind the buffers of one input shape (caller holds the lock)."""
        ort, session = self._ort, self._session
        if len(self._bound) >= MAX_SHAPES:  # evict the oldest, never batch size 1
            oldest = next((s for s in self._bound if s[0] != 1), next(iter(self._bound)))
            del self._bound[oldest]
        inp = np.zeros(shape, self._in_dtype)
        try:  # the output's shape: one run on zeros (classifiers' outputs are static)
            probe = session.run([self._out_name], {self._in_name: inp})[0]
        except Exception as exc:
            raise BackendError(f"ONNX Runtime inference failed: {exc}") from exc
        out = np.empty(probe.shape, probe.dtype)
        in_value = ort.OrtValue.ortvalue_from_numpy(inp)
        out_value = ort.OrtValue.ortvalue_from_numpy(out)
        binding = session.io_binding()
        binding.bind_ortvalue_input(self._in_name, in_value)
        binding.bind_ortvalue_output(self._out_name, out_value)
        inner = binding._iobinding if self._inner else binding
        self._bound[shape] = [_Bound(inner, inp, out, (binding, in_value, out_value))]

    # -- the reference path ----------------------------------------------------------------

    def infer_generic(self, x: np.ndarray) -> np.ndarray:
        """The plain ``session.run`` call, batch as given (the reference for the tests)."""
        if self._session is None:
            raise BackendError("ONNX Runtime backend used before load()")
        return run_batch(self._run, check_batch(x, self._sample_shape), self._batch, "ONNX Runtime")

    def _run(self, x: np.ndarray) -> np.ndarray:
        feed = quantize(x, *self._in_q) if self._in_q else x.astype(self._in_dtype, copy=False)
        # a fresh RunOptions per run, so a late cancel cannot hit the next one
        self._generic_options = options = self._ort.RunOptions()
        out = self._session.run([self._out_name], {self._in_name: feed}, options)[0]
        if self._out_q:
            return dequantize(out, *self._out_q)
        return np.asarray(out, dtype=np.float32)

    @property
    def bound_shapes(self) -> list[tuple[int, ...]]:
        """Input shapes with pre-bound buffers now, oldest first."""
        return list(self._bound)

    def cancel(self) -> bool:
        """Raise the terminate flag of the runs in progress: ORT stops at the next node and
        the call raises. The fast path lowers the flag before its next run."""
        self._raised = True
        for options in (self._options, self._generic_options):
            if options is not None:
                options.terminate = True
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": RUNTIME,
            "version": self._ort.__version__,
            "device": "CPU",
            "threads": self.threads or physical_cores(),
        }

    def close(self) -> None:
        with self._lock:
            self._bound = {}
            self._session = None


def _f32(x: np.ndarray) -> np.ndarray:
    return x if x.dtype == np.float32 else np.asarray(x, dtype=np.float32)
