"""LiteRT (TensorFlow Lite) backend.

Interpreter lookup order: ``ai_edge_litert`` (the maintained package), then
``tflite_runtime`` (broken under numpy 2, kept for old devices), then ``tensorflow.lite``
only if TensorFlow happens to be installed. Quantisation parameters are read from the
model itself, which is the ground truth for what the interpreter expects.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import Artifact
from edge.errors import BackendError, RuntimeMissingError
from edge.runtime.backends.base import RuntimeInfo
from edge.runtime.backends.quant import check_batch, dequantize, quantize, run_batch

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


def create(**options: Any) -> LiteRTBackend:
    return LiteRTBackend(**options)


class LiteRTBackend:
    """One .tflite model in one interpreter. ``infer`` is serialised with a lock:
    a TFLite interpreter is not safe to call from two threads at once."""

    runtime = RUNTIME

    def __init__(self, threads: int | None = None, **_ignored: Any) -> None:
        if threads is not None and threads < 1:
            raise BackendError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        self._cls, self._package, self._version = _interpreter_class()
        self._interp: Any = None
        self._lock = threading.Lock()
        self._batch = 1
        self._resizable = True
        self._sample_shape: tuple[int, ...] | None = None

    def load(self, model_path: Path, artifact: Artifact | None = None) -> None:
        try:
            self._interp = self._cls(model_path=str(model_path), num_threads=self.threads)
            self._interp.allocate_tensors()
        except Exception as exc:
            raise BackendError(f"LiteRT cannot load {Path(model_path).name}: {exc}") from exc
        inp = self._interp.get_input_details()
        if len(inp) != 1:
            raise BackendError(f"{Path(model_path).name}: expected 1 input, model has {len(inp)}")
        self._details()
        shape = [int(s) for s in self._in["shape"]]
        self._batch = shape[0]
        # Even fixed-batch tflite models usually accept resize_tensor_input; if one does
        # not, infer() falls back to looping over the model's own batch size.
        self._resizable = True
        self._sample_shape = tuple(shape[1:])

    def _quant(self, detail: dict[str, Any]) -> tuple[float, int] | None:
        if np.dtype(detail["dtype"]) in (np.float32, np.float16):
            return None
        scale, zp = detail.get("quantization", (0.0, 0))
        if not scale:
            raise BackendError(f"integer tensor {detail['name']!r} has no quantisation scale")
        return float(scale), int(zp)

    def _details(self) -> None:
        """Cache tensor indices, dtypes and quantisation (hot path: no lookups per call)."""
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        self._in_index, self._out_index = self._in["index"], self._out["index"]
        self._in_dtype = np.dtype(self._in["dtype"])
        self._in_q = self._quant(self._in)
        self._out_q = self._quant(self._out)

    def _run(self, x: np.ndarray) -> np.ndarray:
        interp = self._interp
        if self._in_q:
            feed = quantize(x, *self._in_q, self._in_dtype.name)
        else:
            feed = x.astype(self._in_dtype, copy=False)
        interp.set_tensor(self._in_index, feed)
        interp.invoke()
        return self._output()

    def _output(self) -> np.ndarray:
        """The output tensor as float32 scores (a copy: the tensor is reused)."""
        out = self._interp.get_tensor(self._out_index)
        return dequantize(out, *self._out_q) if self._out_q else np.array(out, dtype=np.float32)

    def _resize(self, n: int) -> None:
        """Make the interpreter take a batch of ``n`` (caller holds the lock)."""
        if n != self._batch and self._resizable:
            try:
                self._interp.resize_tensor_input(
                    self._in["index"], [n, *(self._sample_shape or ())]
                )
                self._interp.allocate_tensors()
                self._details()
                self._batch = n
            except Exception:
                self._resizable = False

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self._interp is None:
            raise BackendError("LiteRT backend used before load()")
        arr = check_batch(x, self._sample_shape)
        with self._lock:
            self._resize(arr.shape[0])
            return run_batch(self._run, arr, self._batch, "LiteRT")

    @property
    def fillable(self) -> bool:
        """Whether :meth:`fill_and_infer` can be used (a float input, not quantised, that
        takes one sample)."""
        return (
            self._interp is not None
            and self._in_q is None
            and self._in_dtype == np.float32
            and (self._batch == 1 or self._resizable)
        )

    def fill_and_infer(self, fill: Callable[[np.ndarray], bool]) -> np.ndarray | None:
        """Run one sample written by ``fill`` straight into the input tensor, without the
        copy ``set_tensor`` makes: ``fill(buffer)`` gets the writable sample-shaped input
        and returns False to cancel (nothing runs, None is returned). It must keep no
        reference to the buffer: LiteRT refuses to run while one exists."""
        if not self.fillable:
            raise BackendError("this LiteRT model does not take a float input to fill")
        with self._lock:
            self._resize(1)
            if self._batch != 1:
                raise BackendError("this LiteRT model cannot be resized to one sample")
            view = self._interp.tensor(self._in_index)()
            try:
                accepted = fill(view[0])
            finally:
                del view
            if not accepted:
                return None
            try:
                self._interp.invoke()
                return self._output()
            except Exception as exc:
                raise BackendError(f"LiteRT inference failed: {exc}") from exc

    def cancel(self) -> bool:
        """LiteRT's Python interpreter has no way to interrupt ``invoke``."""
        return False

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": RUNTIME,
            "package": self._package,
            "version": self._version,
            "device": "CPU",
            "threads": self.threads,
        }

    def close(self) -> None:
        self._interp = None
