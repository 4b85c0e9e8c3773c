"""OpenVINO backend (CPU device).

Reads the IR ``.xml`` with its ``.bin`` beside it (same stem). A model with a fixed batch
is reshaped to a dynamic batch before compiling when OpenVINO allows it; otherwise
batches are run in slices of the model's own batch size. NNCF int8 models keep float
I/O (FakeQuantize inside), so integer I/O is converted only if the graph really has it.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import Artifact
from edge.errors import BackendError, RuntimeMissingError
from edge.runtime.backends.base import RuntimeInfo
from edge.runtime.backends.quant import artifact_quant, check_batch, dequantize, quantize, run_batch

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


class OpenVINOBackend:
    """One IR model compiled for the CPU; one infer request reused under a lock."""

    runtime = RUNTIME

    def __init__(self, threads: int | None = None, **_ignored: Any) -> None:
        if threads is not None and threads < 1:
            raise BackendError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        self._ov = _ov()
        self._compiled: Any = None
        self._request: Any = None
        self._lock = threading.Lock()

    def load(self, model_path: Path, artifact: Artifact | None = None) -> None:
        ov = self._ov
        path = Path(model_path)
        core = ov.Core()
        try:
            model = core.read_model(str(path))
        except Exception as exc:
            raise BackendError(f"OpenVINO cannot read {path.name}: {exc}") from exc
        if len(model.inputs) != 1:
            raise BackendError(f"{path.name}: expected 1 input, model has {len(model.inputs)}")
        pshape = model.inputs[0].get_partial_shape()
        dims = [d.get_length() if d.is_static else -1 for d in pshape]
        self._sample_shape = tuple(dims[1:])
        self._batch = dims[0]
        if self._batch != -1:
            try:
                model.reshape({model.inputs[0].any_name: ov.PartialShape([-1, *dims[1:]])})
                self._batch = -1
            except Exception:  # some graphs bake the batch in; loop instead
                pass
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        try:
            self._compiled = core.compile_model(model, DEVICE, config)
        except Exception as exc:
            raise BackendError(f"OpenVINO cannot compile {path.name} for {DEVICE}: {exc}") from exc
        self._request = self._compiled.create_infer_request()
        self._in_type = self._compiled.inputs[0].get_element_type().get_type_name()
        self._out_type = self._compiled.outputs[0].get_element_type().get_type_name()
        self._in_q = self._out_q = None
        if self._in_type in ("i8", "u8"):
            in_q = artifact_quant(artifact.inputs if artifact else [], "input", path.name)
            self._in_q = (*in_q, "int8" if self._in_type == "i8" else "uint8")
        if self._out_type in ("i8", "u8"):
            self._out_q = artifact_quant(artifact.outputs if artifact else [], "output", path.name)

    def _run(self, x: np.ndarray) -> np.ndarray:
        feed = quantize(x, *self._in_q) if self._in_q else x
        with self._lock:
            result = self._request.infer({0: feed})
            out = np.array(result[self._compiled.outputs[0]])
        if self._out_q:
            return dequantize(out, *self._out_q)
        return out.astype(np.float32, copy=False)

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self._compiled is None:
            raise BackendError("OpenVINO backend used before load()")
        return run_batch(self._run, check_batch(x, self._sample_shape), self._batch, "OpenVINO")

    def cancel(self) -> bool:
        """Cancel the infer request: a running ``infer`` raises; an idle one is unaffected.
        OpenVINO checks the flag only between its parallel tasks: a model compiled for one
        thread runs to the end (False)."""
        request = self._request
        if request is not None:
            request.cancel()
        return self._threads_used() != 1

    def _threads_used(self) -> int | None:
        with contextlib.suppress(Exception):
            return int(self._compiled.get_property("INFERENCE_NUM_THREADS"))
        return self.threads

    def describe(self) -> dict[str, Any]:
        threads = self._threads_used() if self._compiled is not None else self.threads
        return {
            "runtime": RUNTIME,
            "version": _version(self._ov),
            "device": DEVICE,
            "threads": threads,
        }

    def close(self) -> None:
        self._request = None
        self._compiled = None
