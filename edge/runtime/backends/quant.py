"""Shared helpers for backends: int8 quantise/dequantise and fixed-batch looping.

Backends speak model-domain float32 to callers; a quantised tensor is converted at the
edge of the runtime call with ``real = scale * (q - zero_point)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edge.contract import TensorSpec
from edge.errors import BackendError

INT_RANGES = {
    "int8": (-128, 127),
    "uint8": (0, 255),
    "int16": (-32768, 32767),
}


def quantize(x: np.ndarray, scale: float, zero_point: int, dtype: str) -> np.ndarray:
    """float32 -> integer tensor, rounding half to even and saturating at the dtype range."""
    if dtype not in INT_RANGES:
        raise BackendError(f"cannot quantise to {dtype}")
    if not scale or not np.isfinite(scale):
        raise BackendError(f"invalid quantisation scale {scale!r}")
    lo, hi = INT_RANGES[dtype]
    q = np.asarray(x, dtype=np.float32) / np.float32(scale)
    np.round(q, out=q)
    q += zero_point
    np.clip(q, lo, hi, out=q)
    return q.astype(dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer tensor -> float32."""
    return (np.float32(scale) * (q.astype(np.float32) - np.float32(zero_point))).astype(np.float32)


def run_in_chunks(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int) -> np.ndarray:
    """Run ``fn`` over ``x`` in slices of the model's fixed batch size (padding the last)."""
    if x.shape[0] == batch:
        return fn(x)
    outs: list[np.ndarray] = []
    for start in range(0, x.shape[0], batch):
        part = x[start : start + batch]
        n = part.shape[0]
        if n < batch:
            pad = np.repeat(part[-1:], batch - n, axis=0)
            part = np.concatenate([part, pad], axis=0)
        outs.append(fn(part)[:n])
    return np.concatenate(outs, axis=0)


def artifact_quant(specs: list[TensorSpec], what: str, model: str) -> tuple[float, int]:
    """``(scale, zero_point)`` of the artifact's first ``what`` tensor, for a model whose graph
    I/O is integer but carries no quantisation info itself (ONNX, OpenVINO IR)."""
    if not specs or specs[0].scale is None or specs[0].zero_point is None:
        raise BackendError(
            f"{model}: the model's {what} is integer but the artifact gives no scale/zero_point"
        )
    return specs[0].scale, specs[0].zero_point


def run_batch(
    fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray, batch: int, runtime: str
) -> np.ndarray:
    """Run ``fn`` over a checked batch: whole when the model's batch is dynamic (-1) or
    matches, else in slices of it; a runtime's own failure becomes a BackendError."""
    try:
        if batch == -1:
            return fn(x)
        return run_in_chunks(fn, x, batch)
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(f"{runtime} inference failed: {exc}") from exc


def check_batch(x: np.ndarray, sample_shape: tuple[int, ...] | None) -> np.ndarray:
    """A C-contiguous float32 batch, refusing a wrong sample shape with a clear message."""
    arr = np.ascontiguousarray(x, dtype=np.float32)
    if arr.ndim < 1 or arr.shape[0] < 1:
        raise BackendError(f"expected a non-empty batch, got shape {list(arr.shape)}")
    if sample_shape is not None:
        got = arr.shape[1:]
        if len(got) != len(sample_shape) or any(
            s > 0 and g != s for g, s in zip(got, sample_shape, strict=True)
        ):
            raise BackendError(
                f"input sample shape {list(got)} does not fit the model's {list(sample_shape)}"
            )
    return arr
