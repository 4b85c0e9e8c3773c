"""The floor: the fastest calls each runtime allows from plain Python, and how to time them.

The ``floor`` benchmark (cloud/bench/floor.py) divides ``Model.infer`` by these. Each
runtime gets its documented fast calls on the same model file with the same thread count,
built here without any edgekit code in the call path, and the fastest of them (per variant,
measured in the same interleaved rounds) is the floor:

- LiteRT: ``set_tensor``/``invoke``/``get_tensor``; and a kept view of the input tensor
  written in place, the native ``Invoke``, ``GetTensor`` (what the docs call tensor views).
- ONNX Runtime: ``session.run`` with a feed dict; and ``run_with_iobinding`` over buffers
  bound once (input written in place, output copied out).
- OpenVINO: a compile of the static batch-1 shape, ``request.infer`` writing into the
  request's own input tensor memory and copying its output tensor.

The bare calls get the input already in the model's own dtype (an int8 input is quantised
before timing), so they do strictly less work than ``Model.infer``, which takes float32.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.contract import Artifact
from edge.errors import BackendError

Call = Callable[[], Any]


def _in_dtype(x: np.ndarray, dtype: np.dtype[Any], quant: tuple[float, int] | None) -> np.ndarray:
    """``x`` in the model's input dtype: float32 as is, an integer input quantised."""
    if dtype.kind == "f":
        return np.ascontiguousarray(x, dtype=dtype)
    if quant is None or not quant[0]:
        raise BackendError(f"integer input of type {dtype} without a quantisation scale")
    scale, zp = quant
    info = np.iinfo(dtype)
    q = np.clip(np.round(x / np.float32(scale)) + zp, info.min, info.max)
    return np.ascontiguousarray(q.astype(dtype))


def _spec_quant(art: Artifact) -> tuple[float, int] | None:
    spec = art.inputs[0] if art.inputs else None
    if spec is None or spec.scale is None:
        return None
    return float(spec.scale), int(spec.zero_point or 0)


def litert_calls(path: Path, x: np.ndarray, threads: int) -> dict[str, Call]:
    """LiteRT's two fast call styles on their own interpreters (``x`` a batch-1 float32)."""
    from ai_edge_litert.interpreter import Interpreter

    calls: dict[str, Call] = {}
    public = Interpreter(model_path=str(path), num_threads=threads)
    public.allocate_tensors()
    inp, out = public.get_input_details()[0], public.get_output_details()[0]
    q = inp.get("quantization") or (0.0, 0)
    feed = _in_dtype(x, np.dtype(inp["dtype"]), (float(q[0]), int(q[1])) if q[0] else None)
    i_in, i_out = int(inp["index"]), int(out["index"])

    def set_invoke_get() -> Any:
        public.set_tensor(i_in, feed)
        public.invoke()
        return public.get_tensor(i_out)

    calls["set_tensor/invoke/get_tensor"] = set_invoke_get

    views = Interpreter(model_path=str(path), num_threads=threads)
    views.allocate_tensors()
    native = views._interpreter  # the pybind interpreter: Invoke without the view guard
    native.Invoke()  # XNNPACK is applied on the first run and may move the tensors
    native.Invoke()
    view = native.tensor(native, i_in)
    invoke, get = native.Invoke, native.GetTensor

    def tensor_view() -> Any:
        view[...] = feed
        invoke()
        return get(i_out)

    calls["tensor view + native Invoke"] = tensor_view
    # keep the interpreters alive as long as the calls
    set_invoke_get.keep = public  # type: ignore[attr-defined]
    tensor_view.keep = views  # type: ignore[attr-defined]
    return calls


def onnxruntime_calls(path: Path, art: Artifact, x: np.ndarray, threads: int) -> dict[str, Call]:
    """``session.run`` and a pre-bound ``run_with_iobinding`` with the backend's options."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    i, o = sess.get_inputs()[0], sess.get_outputs()[0]
    dtype = np.dtype({"tensor(int8)": np.int8, "tensor(uint8)": np.uint8}.get(i.type, np.float32))
    feed = _in_dtype(x, dtype, _spec_quant(art))
    in_name, out_name = i.name, o.name
    feeds = {in_name: feed}
    names = [out_name]

    def run() -> Any:
        return sess.run(names, feeds)[0]

    inp = np.zeros(feed.shape, feed.dtype)
    probe = sess.run(names, {in_name: inp})[0]
    outbuf = np.empty(probe.shape, probe.dtype)
    binding = sess.io_binding()
    in_value = ort.OrtValue.ortvalue_from_numpy(inp)
    out_value = ort.OrtValue.ortvalue_from_numpy(outbuf)
    binding.bind_ortvalue_input(in_name, in_value)
    binding.bind_ortvalue_output(out_name, out_value)
    run_bound = sess.run_with_iobinding
    options = ort.RunOptions()

    def bound() -> Any:
        inp[...] = feed
        run_bound(binding, options)
        return outbuf.copy()

    calls: dict[str, Call] = {"session.run": run, "run_with_iobinding (bound)": bound}
    # The wrapper's own pybind call under the public method (which adds per-call checks
    # for graph capture and device syncs): the least Python can do per run.
    inner, inner_binding = getattr(sess, "_sess", None), getattr(binding, "_iobinding", None)
    if inner is not None and inner_binding is not None:
        run_inner = inner.run_with_iobinding

        def bound_inner() -> Any:
            inp[...] = feed
            run_inner(inner_binding, options)
            return outbuf.copy()

        calls["pybind run_with_iobinding (bound)"] = bound_inner
    bound.keep = (in_value, out_value)  # type: ignore[attr-defined]
    return calls


def openvino_calls(path: Path, art: Artifact, x: np.ndarray, threads: int) -> dict[str, Call]:
    """A static-shape compile (the backend's config) and its request's tensor memory."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    model.reshape({0: ov.PartialShape(list(x.shape))})
    config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads}
    compiled = core.compile_model(model, "CPU", config)
    el = model.inputs[0].get_element_type().get_type_name()
    dtype = np.dtype({"i8": np.int8, "u8": np.uint8}.get(el, np.float32))
    feed = _in_dtype(x, dtype, _spec_quant(art))
    tensors = compiled.create_infer_request()
    inp = tensors.get_input_tensor(0).data
    out = tensors.get_output_tensor(0).data

    def tensor_memory() -> Any:
        inp[...] = feed
        tensors.infer()
        return out.copy()

    shared = compiled.create_infer_request()
    feeds = {0: feed}

    def infer_shared() -> Any:
        return shared.infer(feeds, share_inputs=True, share_outputs=True)[0].copy()

    calls: dict[str, Call] = {
        "request tensor memory": tensor_memory,
        "infer(share_inputs/outputs)": infer_shared,
    }
    # The pybind InferRequest.infer under the public wrapper (no input dispatch, no
    # results dict): the least Python can do per run.
    base = getattr(getattr(ov, "_pyopenvino", None), "InferRequest", None)
    run_base = getattr(base, "infer", None)
    if run_base is not None:
        raw = compiled.create_infer_request()
        raw_in = raw.get_input_tensor(0).data
        raw_out = raw.get_output_tensor(0).data
        empty: dict[int, Any] = {}

        def pybind_infer() -> Any:
            raw_in[...] = feed
            run_base(raw, empty, True, True)
            return raw_out.copy()

        calls["pybind infer, tensor memory"] = pybind_infer
    tensor_memory.keep = compiled  # type: ignore[attr-defined]
    return calls


def bare_calls(path: Path, art: Artifact, x: np.ndarray, threads: int) -> dict[str, Call]:
    """The bare call styles of ``art``'s runtime on ``path``, each ready to call."""
    builders: dict[str, Callable[[], dict[str, Call]]] = {
        "litert": lambda: litert_calls(path, x, threads),
        "onnxruntime": lambda: onnxruntime_calls(path, art, x, threads),
        "openvino": lambda: openvino_calls(path, art, x, threads),
    }
    if art.runtime not in builders:
        raise BackendError(f"no bare call for runtime {art.runtime!r}")
    try:
        return builders[art.runtime]()
    except BackendError:
        raise
    except Exception as exc:
        raise BackendError(f"bare {art.runtime} call on {path.name} failed: {exc}") from exc


# ---------------------------------------------------------------- timing


def calls_per_block(fn: Call, block_s: float, lo: int = 5, hi: int = 20000) -> int:
    """How many calls of ``fn`` fill about ``block_s`` seconds (warms it up, too)."""
    for _ in range(3):
        fn()
    t, n = time.perf_counter(), 0
    while n < 5 or time.perf_counter() - t < 0.05:
        fn()
        n += 1
    per_call = (time.perf_counter() - t) / n
    return int(min(hi, max(lo, block_s / per_call)))


def interleaved_rounds(calls: dict[str, Call], rounds: int, n: int) -> dict[str, list[float]]:
    """Per call, the ms of every single call over ``rounds`` rounds of ``n`` calls each;
    the order of the calls rotates each round, so machine noise hits them all alike."""
    names = list(calls)
    times: dict[str, list[float]] = {k: [] for k in names}
    clock = time.perf_counter
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]  # rotated each round
        for name in order:
            fn, sink = calls[name], times[name]
            fn()  # one untimed call after switching: caches belong to the other call
            for _ in range(n):
                t = clock()
                fn()
                sink.append((clock() - t) * 1000.0)
    return times
