"""Shared helpers for backends: int8 quantise/dequantise and fixed-batch looping.

Backends speak model-domain float32 to callers; a quantised tensor is converted at the
edge of the runtime call with ``real = scale * (q - zero_point)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

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


def quantize_into(
    x: np.ndarray,
    scale: float,
    zero_point: int,
    out: np.ndarray,
    scratch: np.ndarray,
    *,
    zero_point_first: bool = False,
) -> None:
    """:func:`quantize` written straight into ``out`` (the runtime's integer input buffer),
    through the caller's preallocated float32 ``scratch`` of the same shape: no temporary
    arrays, the same integers as :func:`quantize` (same division, rounding, saturation):
    ONNX QuantizeLinear's ``round(x / scale) + zero_point``. ``zero_point_first``:
    ``round(x / scale + zero_point)`` instead, as OpenVINO's FakeQuantize computes it
    (the two differ on ties when the zero point is odd)."""
    lo, hi = INT_RANGES[out.dtype.name]
    np.divide(x, np.float32(scale), out=scratch, casting="unsafe")
    if zero_point_first:
        scratch += zero_point
        np.round(scratch, out=scratch)
    else:
        np.round(scratch, out=scratch)
        scratch += zero_point
    np.clip(scratch, lo, hi, out=out, casting="unsafe")


@dataclass(frozen=True)
class Quantizer:
    """float32 -> integer the way LiteRT's own QUANTIZE kernels do it (XNNPACK's and the
    builtin optimised one, measured in tests/edge/runtime/test_litert.py): multiply by the
    float32 reciprocal of the scale, round half to even, add the zero point, saturate.
    (TFLite's *reference* kernel rounds half away from zero instead; camera pixels scaled
    to [-1, 1] with scale 1/127.5 land on exact halves, so the choice is visible.)

    :meth:`into` writes straight into the runtime's integer input tensor through a float32
    scratch buffer the caller allocated once: no array is allocated per call.
    """

    scale: float
    zero_point: int
    dtype: str
    _inv: np.float32 = field(init=False, repr=False)
    _zp: np.float32 = field(init=False, repr=False)
    _lo: np.float32 = field(init=False, repr=False)
    _hi: np.float32 = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.dtype not in INT_RANGES:
            raise BackendError(f"cannot quantise to {self.dtype}")
        if not self.scale or not np.isfinite(self.scale) or self.scale < 0:
            raise BackendError(f"invalid quantisation scale {self.scale!r}")
        lo, hi = INT_RANGES[self.dtype]
        f32 = np.float32
        for name, value in (("_inv", f32(1.0) / f32(self.scale)), ("_zp", f32(self.zero_point))):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_lo", f32(lo))
        object.__setattr__(self, "_hi", f32(hi))

    def into(self, x: np.ndarray, out: np.ndarray, scratch: np.ndarray) -> None:
        """Quantise float32 ``x`` into integer ``out`` (same shape), using float32
        ``scratch`` (same shape; may be ``x`` itself, which is then overwritten).
        Plain ufuncs with ``out=`` (measured on a 64-value digits input: ``np.clip``'s Python
        wrapper 2.5 us, a ufunc 0.5 us; ``np.minimum`` casting into int8 1.3 us, a float
        ``np.minimum`` then ``np.copyto`` 1.0 us)."""
        np.multiply(x, self._inv, out=scratch)
        np.rint(scratch, out=scratch)
        if self.zero_point:
            np.add(scratch, self._zp, out=scratch)
        np.maximum(scratch, self._lo, out=scratch)
        np.minimum(scratch, self._hi, out=scratch)
        np.copyto(out, scratch, casting="unsafe")  # integral and in range: exact

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """A new integer array (the generic path; same arithmetic as :meth:`into`)."""
        q = np.asarray(x, dtype=np.float32) * self._inv
        np.rint(q, out=q)
        q += self._zp
        np.clip(q, self._lo, self._hi, out=q)
        return q.astype(self.dtype)


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Integer tensor -> float32."""
    return (np.float32(scale) * (q.astype(np.float32) - np.float32(zero_point))).astype(np.float32)


def score_converter(
    is_float32: bool, quant: tuple[float, int] | None
) -> Callable[[np.ndarray], np.ndarray] | None:
    """How a runtime's output buffer becomes fresh float32 scores, chosen once at load:
    dequantised (integer outputs), cast (other float types), or None for a plain copy."""
    if quant is not None:
        scale, zero_point = quant
        return lambda out: dequantize(out, scale, zero_point)
    if not is_float32:
        return lambda out: out.astype(np.float32)
    return None


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
    try:
        arr = np.ascontiguousarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:  # strings, ragged lists: bad input, not a crash
        raise BackendError(f"input is not a numeric array: {exc}") from exc
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
