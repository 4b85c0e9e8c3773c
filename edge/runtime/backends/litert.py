"""LiteRT (TensorFlow Lite) backend.

Interpreter lookup order: ``ai_edge_litert`` (the maintained package), then
``tflite_runtime`` (broken under numpy 2, kept for old devices), then ``tensorflow.lite``
only if TensorFlow happens to be installed. Quantisation parameters are read from the
model itself, which is the ground truth for what the interpreter expects.

Fast path (``infer``; the calls are made in litert_fast.py): one interpreter per batch
size seen (on demand, a few kept; batch 1 made at load), each allocated once and never
resized, so numpy views of its input tensor stay valid and are kept: a call writes the
batch into that view (an int8 input is quantised straight into it, see
``quant.Quantizer``), invokes the native interpreter directly and takes its output as one
fresh array. The Python ``Interpreter.invoke`` refuses to run while such views exist, a
guard against ``allocate_tensors`` moving the buffers, which these interpreters never call
again. Each interpreter's call is a closure made with it (everything bound in) and guarded
by a one-token free list instead of a lock; ``infer`` itself has batch 1's call written
out in it, so a digits-sized model costs ~0.3 us over the bare call (docs/runtimes.md).

``infer_generic`` is the plain documented API on a separate interpreter (``set_tensor``,
``invoke``, ``get_tensor``, resized to each batch); the equivalence tests compare the two.

Threads: ``threads=None`` is LiteRT's own default, which runs XNNPACK on one thread; the
number actually used is in ``describe()``.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections import OrderedDict
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import Artifact
from edge.errors import BackendError, RuntimeMissingError
from edge.runtime.backends.base import RuntimeInfo
from edge.runtime.backends.litert_fast import (
    _F32,
    Filler,
    Slot,
    fast_call,
    fill_call,
    make_infer,
)
from edge.runtime.backends.quant import Quantizer, check_batch, dequantize, run_in_chunks

RUNTIME = "litert"
INFO = RuntimeInfo(
    name=RUNTIME,
    title="LiteRT",
    suffix=".tflite",
    packages=(
        ("ai_edge_litert", ("ai-edge-litert",)),
        ("tflite_runtime", ("tflite-runtime",)),
        ("tensorflow", ("tensorflow", "tensorflow-cpu")),
    ),
    extra="edge",
    # PyPI's wheels (docs/runtimes.md): on armv7l only tflite-runtime 2.14 (needs numpy < 2)
    wheels=(
        ("x86_64", "ai-edge-litert"),
        ("aarch64", "ai-edge-litert"),
        ("armv7l", "tflite-runtime"),
    ),
)
_CANDIDATES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow"),
)


def _interpreter_class() -> tuple[Any, str, str]:
    """``(Interpreter class, package name, version)`` of the first usable runtime."""
    errors: list[str] = []
    for module_name, package in _CANDIDATES:
        if module_name.startswith("tensorflow") and importlib.util.find_spec("tensorflow") is None:
            continue
        try:
            module = importlib.import_module(module_name)
            cls = module.Interpreter
        except Exception as exc:  # tflite_runtime raises odd errors under numpy 2
            errors.append(f"{package}: {type(exc).__name__}: {exc}")
            continue
        try:
            ver = pkg_version(package)
        except PackageNotFoundError:
            ver = "unknown"
        return cls, package, ver
    detail = f" ({'; '.join(errors)})" if errors else ""
    raise RuntimeMissingError(f"LiteRT is not installed{detail}; {INFO.install_hint}")


def probe() -> dict[str, Any]:
    """Availability of LiteRT here; RuntimeMissingError if no interpreter package works."""
    _cls, package, ver = _interpreter_class()
    return {"available": True, "version": ver, "package": package, "devices": ["CPU"]}


MAX_BATCH_SHAPES = 3  # interpreters kept per model, one per batch size (batch 1 included)


def create(**options: Any) -> LiteRTBackend:
    return LiteRTBackend(**options)


class LiteRTBackend:
    """One .tflite model, one interpreter per batch size. A TFLite interpreter is not safe
    to call from two threads at once: each runs only for the holder of its token; the lock
    guards making and evicting interpreters."""

    runtime = RUNTIME

    def __init__(self, threads: int | None = None, **_ignored: Any) -> None:
        if threads is not None and threads < 1:
            raise BackendError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        self._cls, self._package, self._version = _interpreter_class()
        self._path: Path | None = None
        self._slots: OrderedDict[int, Slot] = OrderedDict()
        self._calls: dict[tuple[int, ...], Callable[[np.ndarray], np.ndarray]] = {}
        self._generic: Any = None
        self._lock = threading.Lock()
        self._batch = 1  # the model's own batch size
        self._resizable = True
        self._sample_shape: tuple[int, ...] = ()
        self._in_q: Quantizer | None = None
        self._out_q: tuple[float, int] | None = None
        # ``fill_and_infer(fill)``: run one sample written by ``fill`` straight into the
        # input tensor (a float32 buffer quantised into it, for an int8 input), without the
        # copy ``infer`` makes. ``fill(buffer)`` gets the writable sample-shaped buffer and
        # returns False to cancel (nothing runs, None is returned); it must keep no
        # reference to the buffer. Bound to the batch-1 interpreter's own call once that
        # exists (``litert_fast.fill_call``), else the checked path.
        self.fill_and_infer: Callable[[Filler], np.ndarray | None]
        self.fill_and_infer = self._fill_checked
        # Float32 scores for batch ``x``: the fast path (see the module docstring), a
        # float32 array of a batch shape seen before, or the checked path. Made at load.
        self.infer: Callable[[np.ndarray], np.ndarray] = self._infer

    def load(self, model_path: Path, artifact: Artifact | None = None) -> None:
        name = Path(model_path).name
        interp = self._new(Path(model_path))
        inp = interp.get_input_details()
        if len(inp) != 1:
            raise BackendError(f"{name}: expected 1 input, model has {len(inp)}")
        self._details(interp)
        shape = tuple(int(s) for s in self._in["shape"])
        self._path, self._batch, self._sample_shape = Path(model_path), shape[0], shape[1:]
        self._resizable = True
        self._slots.clear()
        self._calls = {}
        self.fill_and_infer = self._fill_checked
        self._generic = None
        self._slots[self._batch] = self._slot_of(interp, self._batch)
        if self._batch != 1:
            self._slot(1)  # serving runs one sample at a time: make it ready now
        self.infer = make_infer(self)

    def _new(self, path: Path) -> Any:
        try:
            interp = self._cls(model_path=str(path), num_threads=self.threads)
            interp.allocate_tensors()
        except Exception as exc:
            raise BackendError(f"LiteRT cannot load {path.name}: {exc}") from exc
        return interp

    @staticmethod
    def _quant(detail: dict[str, Any]) -> tuple[float, int] | None:
        if np.dtype(detail["dtype"]) in (np.float32, np.float16):
            return None
        scale, zp = detail.get("quantization", (0.0, 0))
        if not scale:
            raise BackendError(f"integer tensor {detail['name']!r} has no quantisation scale")
        return float(scale), int(zp)

    def _details(self, interp: Any) -> None:
        """Tensor indices, dtypes and quantisation, read once (no lookups per call)."""
        self._in = interp.get_input_details()[0]
        self._out = interp.get_output_details()[0]
        self._in_index, self._out_index = int(self._in["index"]), int(self._out["index"])
        self._in_dtype = np.dtype(self._in["dtype"])
        if self._in_dtype not in (_F32, np.dtype(np.int8), np.dtype(np.uint8)):
            raise BackendError(f"LiteRT input of type {self._in_dtype} is not supported")
        q = self._quant(self._in)
        self._in_q = Quantizer(*q, self._in_dtype.name) if q else None
        self._out_q = self._quant(self._out)
        scale, zp = self._out_q or (1.0, 0)
        self._out_scale, self._out_zp = np.float32(scale), np.float32(zp)
        if self._out_q is None and np.dtype(self._out["dtype"]) != _F32:
            raise BackendError(f"LiteRT output of type {self._out['dtype']} is not supported")

    def _slot_of(self, interp: Any, n: int) -> Slot:
        shape = (n, *self._sample_shape)
        slot = Slot(interp, n, shape, self._in_index, self._in_q is not None)
        self._calls[shape] = fast_call(self, slot)
        if n == 1:  # never evicted: its fill call stays valid until close or load
            self.fill_and_infer = fill_call(self, slot)
        return slot

    def _slot(self, n: int) -> Slot | None:
        """The interpreter for batch ``n``, made on first use (caller holds the lock, or is
        ``load``); None when the model cannot be resized to ``n``."""
        slot = self._slots.get(n)
        if slot is not None:
            self._slots.move_to_end(n)
            return slot
        if not self._resizable or self._path is None:
            return None
        try:
            interp = self._cls(model_path=str(self._path), num_threads=self.threads)
            interp.resize_tensor_input(self._in_index, [n, *self._sample_shape], strict=False)
            interp.allocate_tensors()
            slot = self._slot_of(interp, n)
        except Exception:
            self._resizable = False  # fixed-batch model: infer() loops over its own batch
            return None
        self._slots[n] = slot
        while len(self._slots) > MAX_BATCH_SHAPES:
            oldest = next(k for k in self._slots if k not in (1, self._batch, n))
            del self._calls[self._slots.pop(oldest).shape]  # a call running on it finishes
        return slot

    def _scores(self, slot: Slot) -> np.ndarray:
        """Invoke ``slot`` (its input already written) and return fresh float32 scores."""
        slot.invoke()
        out = slot.get(self._out_index)  # a copy: the caller may keep it
        if self._out_q is None:
            return out
        res = out.astype(np.float32)  # = quant.dequantize, with constants made at load
        np.subtract(res, self._out_zp, out=res)
        np.multiply(res, self._out_scale, out=res)
        return res

    def _run(self, slot: Slot, x: np.ndarray) -> np.ndarray:
        q = self._in_q
        if q is None:
            np.copyto(slot.view, x)
        else:
            q.into(x, slot.view, slot.scratch)  # type: ignore[arg-type]
        return self._scores(slot)

    def _infer(self, x: np.ndarray) -> np.ndarray:
        """``infer`` before load and after close: the checked path says so."""
        return self._infer_checked(x)

    def _infer_checked(self, x: np.ndarray) -> np.ndarray:
        """A batch size seen for the first time, or an input that needs converting first."""
        if not self._slots:
            raise BackendError("LiteRT backend used before load()")
        arr = check_batch(x, self._sample_shape)
        n = arr.shape[0]
        with self._lock:
            slot = self._slot(n)
            if slot is not None:
                return self._run_taken(slot, lambda: self._run(slot, arr))
            own = self._slots[self._batch]

            def chunks() -> np.ndarray:
                return run_in_chunks(lambda part: self._run(own, part), arr, self._batch)

            return self._run_taken(own, chunks)

    @staticmethod
    def _run_taken(slot: Slot, fn: Callable[[], np.ndarray]) -> np.ndarray:
        """``fn()`` holding ``slot``'s token, its errors as BackendError."""
        slot.take()
        try:
            return fn()
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(f"LiteRT inference failed: {exc}") from exc
        finally:
            slot.give()

    def infer_generic(self, x: np.ndarray) -> np.ndarray:
        """The documented API call on its own interpreter: resize to the batch if needed,
        ``set_tensor``, ``invoke``, ``get_tensor``. For equivalence tests, not serving."""
        if self._path is None:
            raise BackendError("LiteRT backend used before load()")
        arr = check_batch(x, self._sample_shape)
        with self._lock:
            if self._generic is None:
                self._generic = self._new(self._path)
            interp = self._generic
            if tuple(interp.get_input_details()[0]["shape"]) != arr.shape:
                interp.resize_tensor_input(self._in_index, list(arr.shape), strict=False)
                interp.allocate_tensors()
            feed = arr if self._in_q is None else self._in_q(arr)
            interp.set_tensor(self._in_index, feed)
            interp.invoke()
            out = interp.get_tensor(self._out_index)
        if self._out_q is None:
            return np.array(out, dtype=np.float32)
        return dequantize(out, *self._out_q)

    @property
    def fillable(self) -> bool:
        """Whether ``fill_and_infer`` can be used (a model that takes one sample)."""
        return 1 in self._slots or (bool(self._slots) and self._resizable)

    def _fill_checked(self, fill: Filler) -> np.ndarray | None:
        """``fill_and_infer`` the slow way: make the batch-1 interpreter if needed and wait
        for its token (slot 1 is never evicted, so the lock is not held while it runs)."""
        if not self.fillable:
            raise BackendError("this LiteRT model cannot be resized to one sample")
        with self._lock:
            slot = self._slot(1)
            if slot is None:
                raise BackendError("this LiteRT model cannot be resized to one sample")
        slot.take()  # the fast path may be writing this very buffer
        try:
            if not fill(slot.sample):
                return None
            try:
                if self._in_q is not None:
                    self._in_q.into(slot.scratch, slot.view, slot.scratch)  # type: ignore[arg-type]
                return self._scores(slot)
            except Exception as exc:
                raise BackendError(f"LiteRT inference failed: {exc}") from exc
        finally:
            slot.give()

    def cancel(self) -> bool:
        """LiteRT's Python interpreter has no way to interrupt ``invoke``."""
        return False

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": RUNTIME,
            "package": self._package,
            "version": self._version,
            "device": "CPU",
            "threads": self.threads or 1,  # LiteRT's default runs XNNPACK on one thread
            "batch_shapes": sorted(self._slots),
        }

    def close(self) -> None:
        with self._lock:
            self._slots.clear()
            self._calls = {}
            self.fill_and_infer = self._fill_checked
            self.infer = self._infer
            self._generic = None
