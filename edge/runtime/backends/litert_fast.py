"""LiteRT's fast path: one interpreter slot per batch size, and the calls made with it.

Each call is a closure with everything it needs bound in (the slot's input view, the
native ``Invoke`` and ``GetTensor``, the output index): no attribute lookups per call and,
instead of a lock, the slot's one-token free list (``list.pop``/``append`` are atomic and
cost a third of ``with lock``). A call that finds the token taken (another thread runs the
interpreter) waits on the backend's checked path. See edge/runtime/backends/litert.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from edge.errors import BackendError
from edge.runtime.backends.quant import Quantizer

_F32 = np.dtype(np.float32)
_ND = np.ndarray
Filler = Callable[[np.ndarray], bool]  # writes one sample into the buffer given; False: skip


class Backend(Protocol):
    """What the calls take from the LiteRT backend (edge/runtime/backends/litert.py)."""

    _in_q: Quantizer | None
    _out_q: tuple[float, int] | None
    _out_index: int
    _calls: dict[tuple[int, ...], Callable[[np.ndarray], np.ndarray]]

    @property
    def _slots(self) -> Any: ...  # batch size -> Slot (an OrderedDict)

    def _infer_checked(self, x: np.ndarray) -> np.ndarray: ...

    def _fill_checked(self, fill: Filler) -> np.ndarray | None: ...

    def _run(self, slot: Slot, x: np.ndarray) -> np.ndarray: ...

    def _scores(self, slot: Slot) -> np.ndarray: ...


def stable_view(native: Any, index: int) -> np.ndarray:
    """A view of tensor ``index`` that stays valid: LiteRT applies its default delegate
    (XNNPACK) on the first ``Invoke`` after ``allocate_tensors`` and may move the tensors
    then (measured: the digits models' input does), so the view is taken after two warm-up
    runs and only if the buffer stayed put between them. Later runs never move it: only
    resizing or reallocating does, which a slot's interpreter never does again."""
    native.Invoke()
    first = native.tensor(native, index).ctypes.data
    native.Invoke()
    view: np.ndarray = native.tensor(native, index)
    if view.ctypes.data != first:
        raise BackendError("LiteRT moved the input tensor between runs; cannot keep a view")
    return view


class Slot:
    """One interpreter allocated for one batch size, with its input view kept."""

    __slots__ = ("free", "get", "interp", "invoke", "n", "sample", "scratch", "shape", "view")

    def __init__(self, interp: Any, n: int, shape: tuple[int, ...], in_index: int, q: bool):
        native = interp._interpreter  # the pybind object the Python class wraps
        self.interp, self.n, self.shape = interp, n, shape
        self.invoke: Callable[[], None] = native.Invoke
        self.get: Callable[[int], np.ndarray] = native.GetTensor
        self.view: np.ndarray = stable_view(native, in_index)
        if self.view.shape != shape:
            raise BackendError(f"LiteRT input is {list(self.view.shape)}, expected {list(shape)}")
        # int8 input: float32 samples are written (or filled) here, then quantised into view
        self.scratch: np.ndarray | None = np.empty(shape, np.float32) if q else None
        self.sample: np.ndarray = self.view[0] if self.scratch is None else self.scratch[0]
        # Who may run this interpreter: a one-token free list. ``list.pop``/``append`` are
        # atomic and cost a third of ``with lock``, which on a 2 us model is 8 % of the call.
        self.free: list[bool] = [True]

    def take(self) -> None:
        """Wait for the token (the slow paths; the fast path never waits, see ``infer``):
        the holder keeps it for one invoke, so a short back-off poll is enough."""
        delay = 0.0
        while True:
            try:
                self.free.pop()
                return
            except IndexError:
                time.sleep(delay)
                delay = min(5e-4, delay * 2 or 1e-5)

    def give(self) -> None:
        self.free.append(True)


def fast_call(b: Backend, slot: Slot) -> Callable[[np.ndarray], np.ndarray]:
    """``infer`` for one batch shape, with everything it needs bound in: no attribute
    lookups, no checks beyond the token. A call that finds the token taken (another
    thread runs this interpreter) waits for it on the slow path."""
    free, slow = slot.free, b._infer_checked
    if b._in_q is None and b._out_q is None:
        view, invoke, get, out_index = slot.view, slot.invoke, slot.get, b._out_index

        def call(x: np.ndarray) -> np.ndarray:
            try:
                free.pop()
            except IndexError:
                return slow(x)
            try:
                view[...] = x
                invoke()
                out: np.ndarray = get(out_index)  # a copy: the caller may keep it
                return out
            except Exception as exc:
                raise BackendError(f"LiteRT inference failed: {exc}") from exc
            finally:
                free.append(True)

        return call
    run = b._run

    def call_quantized(x: np.ndarray) -> np.ndarray:
        try:
            free.pop()
        except IndexError:
            return slow(x)
        try:
            return run(slot, x)
        except Exception as exc:
            raise BackendError(f"LiteRT inference failed: {exc}") from exc
        finally:
            free.append(True)

    return call_quantized


def make_infer(b: Backend) -> Callable[[np.ndarray], np.ndarray]:
    """``infer`` for the loaded model: the batch-1 fast call written out in it (on a
    digits-sized model a second Python call is 4 % of the call), other batch shapes
    seen before through their own fast calls, anything else the checked path."""
    calls, checked, slot = b._calls, b._infer_checked, b._slots.get(1)
    if slot is None or b._in_q is not None or b._out_q is not None:

        def infer_any(x: np.ndarray) -> np.ndarray:
            if type(x) is _ND and x.dtype is _F32:
                call = calls.get(x.shape)
                if call is not None:
                    return call(x)
            return checked(x)

        return infer_any
    shape1, free, view, invoke, get = slot.shape, slot.free, slot.view, slot.invoke, slot.get
    out_index = b._out_index

    def infer(x: np.ndarray) -> np.ndarray:
        # ``is``: numpy's float32 dtype is a singleton (any other float32 dtype object,
        # a byte-swapped one say, takes the checked path); ``==`` costs 4 % on digits.
        if type(x) is _ND and x.dtype is _F32:
            shape = x.shape
            if shape == shape1:  # = calls[shape1](x), inlined
                try:
                    free.pop()
                except IndexError:
                    return checked(x)
                try:
                    view[...] = x
                    invoke()
                    out: np.ndarray = get(out_index)  # a copy: the caller may keep it
                    return out
                except Exception as exc:
                    raise BackendError(f"LiteRT inference failed: {exc}") from exc
                finally:
                    free.append(True)
            call = calls.get(shape)
            if call is not None:
                return call(x)
        return checked(x)

    return infer


def fill_call(b: Backend, slot: Slot) -> Callable[[Filler], np.ndarray | None]:
    """``fill_and_infer`` on the batch-1 interpreter with everything bound in, like
    ``fast_call``: the agent's in-process path runs it on every inference."""
    free, sample, slow = slot.free, slot.sample, b._fill_checked
    q, scratch, view, scores = b._in_q, slot.scratch, slot.view, b._scores
    invoke, get, out_index = slot.invoke, slot.get, b._out_index
    if q is None and b._out_q is None:  # float I/O: the run written out

        def fill_float(fill: Filler) -> np.ndarray | None:
            try:
                free.pop()
            except IndexError:  # another thread runs this interpreter: wait for it
                return slow(fill)
            try:
                if not fill(sample):
                    return None
                try:
                    invoke()
                    out: np.ndarray = get(out_index)  # a copy: the caller may keep it
                    return out
                except Exception as exc:
                    raise BackendError(f"LiteRT inference failed: {exc}") from exc
            finally:
                free.append(True)

        return fill_float

    def fill_call(fill: Filler) -> np.ndarray | None:
        try:
            free.pop()
        except IndexError:  # another thread runs this interpreter: wait for it
            return slow(fill)
        try:
            if not fill(sample):
                return None
            try:
                if q is not None:
                    q.into(scratch, view, scratch)  # type: ignore[arg-type]
                return scores(slot)
            except Exception as exc:
                raise BackendError(f"LiteRT inference failed: {exc}") from exc
        finally:
            free.append(True)

    return fill_call
