"""ONNX Runtime backend (CPU execution provider).

Static-QDQ int8 models keep float32 inputs and outputs, so usually no conversion is
needed here; a model whose graph input or output is itself int8/uint8 is converted with
the artifact's TensorSpec scale/zero-point (ONNX graph I/O carries no quantisation info).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import Artifact
from edge.errors import BackendError, RuntimeMissingError
from edge.runtime.backends.base import RuntimeInfo
from edge.runtime.backends.quant import artifact_quant, check_batch, dequantize, quantize, run_batch

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


class OnnxRuntimeBackend:
    """One .onnx model in one InferenceSession (sessions are thread-safe for run())."""

    runtime = RUNTIME

    def __init__(self, threads: int | None = None, **_ignored: Any) -> None:
        if threads is not None and threads < 1:
            raise BackendError(f"threads must be at least 1, got {threads}")
        self.threads = threads
        self._ort = _ort()
        self._session: Any = None
        self._in_q: tuple[float, int, str] | None = None
        self._out_q: tuple[float, int] | None = None
        self._run_options: Any = None  # of the run in progress: cancel() sets its flag

    def load(self, model_path: Path, artifact: Artifact | None = None) -> None:
        ort = self._ort
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if self.threads:
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(
                str(model_path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise BackendError(f"ONNX Runtime cannot load {Path(model_path).name}: {exc}") from exc
        ins, outs = self._session.get_inputs(), self._session.get_outputs()
        if len(ins) != 1:
            raise BackendError(f"{Path(model_path).name}: expected 1 input, model has {len(ins)}")
        self._in_name, self._out_name = ins[0].name, outs[0].name
        shape = [_dim(d) for d in ins[0].shape]
        self._batch = shape[0]
        self._sample_shape = tuple(shape[1:])
        in_type = _ORT_TYPES.get(ins[0].type)
        out_type = _ORT_TYPES.get(outs[0].type)
        if in_type is None or out_type is None:
            raise BackendError(
                f"{Path(model_path).name}: unsupported tensor types {ins[0].type}/{outs[0].type}"
            )
        self._in_dtype = in_type
        self._in_q = None
        self._out_q = None
        name = Path(model_path).name
        if in_type in ("int8", "uint8"):
            in_q = artifact_quant(artifact.inputs if artifact else [], "input", name)
            self._in_q = (*in_q, in_type)
        if out_type in ("int8", "uint8"):
            self._out_q = artifact_quant(artifact.outputs if artifact else [], "output", name)

    def _run(self, x: np.ndarray) -> np.ndarray:
        feed = quantize(x, *self._in_q) if self._in_q else x.astype(self._in_dtype, copy=False)
        # a fresh RunOptions per run (under 1 us), so a late cancel cannot hit the next one
        self._run_options = options = self._ort.RunOptions()
        out = self._session.run([self._out_name], {self._in_name: feed}, options)[0]
        if self._out_q:
            return dequantize(out, *self._out_q)
        return np.asarray(out, dtype=np.float32)

    def infer(self, x: np.ndarray) -> np.ndarray:
        if self._session is None:
            raise BackendError("ONNX Runtime backend used before load()")
        return run_batch(self._run, check_batch(x, self._sample_shape), self._batch, "ONNX Runtime")

    def cancel(self) -> bool:
        """Set the running call's terminate flag: ORT stops at the next node and raises."""
        options = self._run_options
        if options is not None:
            options.terminate = True
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "runtime": RUNTIME,
            "version": self._ort.__version__,
            "device": "CPU",
            "threads": self.threads,
        }

    def close(self) -> None:
        self._session = None
