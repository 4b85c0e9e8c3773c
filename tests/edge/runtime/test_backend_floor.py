"""The ONNX Runtime and OpenVINO fast paths against their generic runtime calls.

Real runtimes, real models (small ONNX graphs built with onnx.helper; OpenVINO gets them
as IR): fast path == generic path exactly, integer inputs quantised exactly as the
runtime's own QuantizeLinear does, static shapes compiled/bound per batch size and
cached, threads sharing a backend, OpenVINO's throughput mode keeping order, errors.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.contract import Artifact, TensorSpec
from edge.errors import BackendError
from edge.runtime.backends import base

RUNTIMES = ["onnxruntime", "openvino"]
IN_SCALE, IN_ZP = 1 / 32, 3  # input quantisation of the integer-input graphs
OUT_SCALE, OUT_ZP = 1 / 256, -128


def _conv_graph(path: Path, *, io: str = "float", batch: int | None = None) -> Path:
    """softmax(dense(relu(conv3x3(x)))) on [N, 8, 8, 1], N dynamic unless ``batch``.

    ``io``: ``float``; ``int8-in`` (int8 input, DequantizeLinear first); ``quant-ref``
    (float input, QuantizeLinear then DequantizeLinear: the runtime quantises, the
    reference for ``int8-in``); ``int8-out`` (scores quantised to int8 at the end);
    ``dequant-ref`` (the same, dequantised again inside: the reference for ``int8-out``).
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32), "K"),
        numpy_helper.from_array(rng.normal(0, 0.3, (144, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(np.array(IN_SCALE, np.float32), "s_in"),
        numpy_helper.from_array(np.array(IN_ZP, np.int8), "z_in"),
        numpy_helper.from_array(np.array(OUT_SCALE, np.float32), "s_out"),
        numpy_helper.from_array(np.array(OUT_ZP, np.int8), "z_out"),
    ]
    nodes = []
    first = "input"
    if io == "int8-in":
        nodes.append(helper.make_node("DequantizeLinear", ["input", "s_in", "z_in"], ["xf"]))
        first = "xf"
    elif io == "quant-ref":
        nodes += [
            helper.make_node("QuantizeLinear", ["input", "s_in", "z_in"], ["xq"]),
            helper.make_node("DequantizeLinear", ["xq", "s_in", "z_in"], ["xf"]),
        ]
        first = "xf"
    nodes += [
        helper.make_node("Transpose", [first], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Conv", ["nchw", "K"], ["conv"], pads=[0, 0, 0, 0]),
        helper.make_node("Relu", ["conv"], ["act"]),
        helper.make_node("Flatten", ["act"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "W"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    out_type, last = TensorProto.FLOAT, "probs"
    if io in ("int8-out", "dequant-ref"):
        nodes.append(helper.make_node("QuantizeLinear", ["probs", "s_out", "z_out"], ["q"]))
        last = "q"
        if io == "int8-out":
            out_type = TensorProto.INT8
        else:
            nodes.append(helper.make_node("DequantizeLinear", ["q", "s_out", "z_out"], ["dq"]))
            last = "dq"
    nodes.append(helper.make_node("Identity", [last], ["scores"]))
    in_type = TensorProto.INT8 if io == "int8-in" else TensorProto.FLOAT
    n: Any = batch or "N"
    graph = helper.make_graph(
        nodes,
        f"conv-{io}",
        [helper.make_tensor_value_info("input", in_type, [n, 8, 8, 1])],
        [helper.make_tensor_value_info("scores", out_type, [n, 3])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the model files live, each built once per module."""
    return tmp_path_factory.mktemp("floor-models")


def _model_file(models: Path, runtime: str, **kw: Any) -> Path:
    onnx_path = models / f"m-{kw.get('io', 'float')}-{kw.get('batch')}.onnx"
    if not onnx_path.exists():
        _conv_graph(onnx_path, **kw)
    if runtime == "onnxruntime":
        return onnx_path
    import openvino as ov

    xml = onnx_path.with_suffix(".xml")
    if not xml.exists():
        ov.save_model(ov.convert_model(str(onnx_path)), str(xml), compress_to_fp16=False)
    return xml


def _specs(io: str) -> tuple[list[TensorSpec], list[TensorSpec]]:
    ins = [TensorSpec("input", [-1, 8, 8, 1], "float32")]
    outs = [TensorSpec("scores", [-1, 3], "float32")]
    if io == "int8-in":
        ins = [TensorSpec("input", [-1, 8, 8, 1], "int8", IN_SCALE, IN_ZP)]
    if io == "int8-out":
        outs = [TensorSpec("scores", [-1, 3], "int8", OUT_SCALE, OUT_ZP)]
    return ins, outs


def _backend(models: Path, runtime: str, *, threads: int = 1, **kw: Any) -> Any:
    if not base.available()[runtime]["available"]:
        pytest.skip(f"{runtime} is not installed here")
    path = _model_file(models, runtime, **kw)
    backend = base.create(runtime, threads=threads)
    ins, outs = _specs(kw.get("io", "float"))
    backend.load(path, Artifact(f"models/{path.name}", runtime, "int8", "0" * 64, 0, {}, ins, outs))
    return backend


def _x(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 3, (n, 8, 8, 1)).astype(np.float32)


def _ties(n: int) -> np.ndarray:
    """Inputs on every rounding tie (k + 0.5 steps) and past both saturation ends."""
    steps = np.arange(-200.5, 200.5, 1.0)
    x = np.resize(steps, n * 64).reshape(n, 8, 8, 1) * IN_SCALE
    return x.astype(np.float32)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_fast_path_gives_the_generic_calls_scores_exactly(models: Path, runtime: str) -> None:
    backend = _backend(models, runtime)
    for n in (1, 3, 8, 1, 3):
        x = _x(n, seed=n)
        fast, generic = backend.infer(x), backend.infer_generic(x)
        assert fast.dtype == np.float32 and fast.shape == (n, 3)
        np.testing.assert_array_equal(fast, generic)
    a, b = backend.infer(_x(1, 10)), backend.infer(_x(1, 11))
    assert not np.array_equal(a, b)  # fresh arrays: a later call does not overwrite `a`
    np.testing.assert_array_equal(a, backend.infer_generic(_x(1, 10)))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_any_input_type_numpy_can_cast_gives_the_float32_answer(models: Path, runtime: str) -> None:
    backend = _backend(models, runtime)
    x = _x(2)
    expected = backend.infer(x)
    np.testing.assert_array_equal(backend.infer(x.astype(np.float64)), expected)
    np.testing.assert_array_equal(backend.infer(np.asfortranarray(x)), expected)
    np.testing.assert_array_equal(backend.infer(x.tolist()), expected)
    with pytest.raises(BackendError, match=r"inference failed|not a numeric array"):
        backend.infer(np.full((1, 8, 8, 1), "seven"))
    with pytest.raises(BackendError, match="does not fit"):
        backend.infer(np.zeros((1, 8, 7, 1), np.float32))
    with pytest.raises(BackendError, match="non-empty batch"):
        backend.infer(np.zeros((0, 8, 8, 1), np.float32))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_integer_inputs_are_quantised_as_the_runtime_itself_does(
    models: Path, runtime: str
) -> None:
    """Our quantisation into an int8-input graph == the runtime's QuantizeLinear inside
    a float-input graph: the same integers reach the same kernels (ties, saturation)."""
    ours = _backend(models, runtime, io="int8-in")
    reference = _backend(models, runtime, io="quant-ref")
    for x in (_ties(1), _ties(4), _x(1), _x(5)):
        expected = reference.infer_generic(x)
        np.testing.assert_array_equal(ours.infer(x), expected)
        np.testing.assert_array_equal(ours.infer_generic(x), expected)
        np.testing.assert_array_equal(ours.infer(x.astype(np.float64)), expected)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_integer_outputs_are_dequantised_as_the_runtime_itself_does(
    models: Path, runtime: str
) -> None:
    ours = _backend(models, runtime, io="int8-out")
    reference = _backend(models, runtime, io="dequant-ref")
    for x in (_x(1), _x(6)):
        out = ours.infer(x)
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, reference.infer_generic(x))
        np.testing.assert_array_equal(out, ours.infer_generic(x))


def _shapes(backend: Any) -> list[tuple[int, ...]]:
    shapes = backend.bound_shapes if backend.runtime == "onnxruntime" else backend.compiled_shapes
    return list(shapes)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_static_shapes_are_made_per_batch_size_on_demand_and_cached(
    models: Path, runtime: str
) -> None:
    module = __import__(f"edge.runtime.backends.{runtime}", fromlist=["MAX_SHAPES"])
    backend = _backend(models, runtime)
    ready = _shapes(backend)
    assert ready in ([], [(1, 8, 8, 1)])  # ONNX: bound on first use; OpenVINO: at load
    backend.infer(_x(1))
    backend.infer(_x(3))
    backend.infer(_x(3))
    assert _shapes(backend) == [(1, 8, 8, 1), (3, 8, 8, 1)]
    sizes = range(4, 4 + module.MAX_SHAPES)
    for n in sizes:
        np.testing.assert_array_equal(backend.infer(_x(n, n)), backend.infer_generic(_x(n, n)))
    kept = _shapes(backend)
    assert len(kept) == module.MAX_SHAPES and kept[0] == (1, 8, 8, 1)  # batch 1 stays
    assert (3, 8, 8, 1) not in kept  # the oldest other one went
    np.testing.assert_array_equal(backend.infer(_x(3)), backend.infer_generic(_x(3)))


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_a_graph_with_a_fixed_batch_runs_bigger_batches_in_slices(
    tmp_path: Path, runtime: str
) -> None:
    from tests.bundles import make_onnx  # Reshape to [1, 64]: batch 1 is baked in

    if not base.available()[runtime]["available"]:
        pytest.skip(f"{runtime} is not installed here")
    backend: Any = base.create(runtime, threads=1)
    backend.load(make_onnx(tmp_path / "fixed.onnx"), None)
    x = _x(5)
    singles = np.concatenate([backend.infer(x[i : i + 1]) for i in range(5)])
    np.testing.assert_array_equal(backend.infer(x), singles)
    np.testing.assert_array_equal(backend.infer_generic(x), singles)
    if runtime == "onnxruntime":  # OpenVINO's reshape rewrites the graph's [1, 64] itself
        assert _shapes(backend) == [(1, 8, 8, 1)]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_threads_sharing_one_backend_each_get_their_own_answers(models: Path, runtime: str) -> None:
    backend = _backend(models, runtime, threads=2)
    # five batch shapes: more than any backend keeps, so shapes are evicted mid-run
    inputs = [_x(n, seed) for seed, n in enumerate((1, 1, 3, 1, 3, 8, 2, 5))]
    expected = [backend.infer_generic(x) for x in inputs]
    failures: list[str] = []
    start = threading.Barrier(4)

    def worker(k: int) -> None:
        start.wait()
        for i in range(60):
            j = (k + i) % len(inputs)
            if not np.array_equal(backend.infer(inputs[j]), expected[j]):
                failures.append(f"thread {k} call {i}: input {j}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_describe_reports_the_threads_actually_used(models: Path, runtime: str) -> None:
    assert _backend(models, runtime, threads=2).describe()["threads"] == 2
    backend: Any = base.create(runtime)  # the runtime's default
    backend.load(_model_file(models, runtime), None)
    threads = backend.describe()["threads"]
    assert isinstance(threads, int) and threads >= 1


def test_onnxruntime_spinning_is_a_session_option(models: Path) -> None:
    if not base.available()["onnxruntime"]["available"]:
        pytest.skip("onnxruntime is not installed here")
    path = _model_file(models, "onnxruntime")
    calm: Any = base.create("onnxruntime", threads=2, spinning=False)
    calm.load(path, None)
    entries = calm._session.get_session_options().get_session_config_entry
    assert entries("session.intra_op.allow_spinning") == "0"
    np.testing.assert_array_equal(calm.infer(_x(2)), calm.infer_generic(_x(2)))


def _openvino(models: Path, **kw: Any) -> Any:
    return _backend(models, "openvino", threads=2, **kw)


def test_openvino_throughput_mode_keeps_the_order_of_the_batches(models: Path) -> None:
    backend = _openvino(models)
    batches = [_x(4, seed) for seed in range(12)] + [_x(3, 99)]  # a short tail
    expected = [backend.infer_generic(b) for b in batches]
    got = list(backend.infer_stream(iter(batches)))
    assert len(got) == len(batches)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)
    assert list(backend.infer_stream(iter([]))) == []


def test_openvino_throughput_mode_pulls_batches_lazily_and_reports_errors(
    models: Path,
) -> None:
    backend = _openvino(models, io="int8-in")
    pulled: list[int] = []

    def frames() -> Any:
        for i in range(1000):
            pulled.append(i)
            yield _ties(2)

    stream = backend.infer_stream(frames())
    first = next(stream)
    np.testing.assert_array_equal(first, backend.infer_generic(_ties(2)))
    assert len(pulled) < 50  # not the whole stream up front
    stream.close()

    def broken() -> Any:
        yield _x(2)
        raise RuntimeError("camera unplugged")

    with pytest.raises(RuntimeError, match="camera unplugged"):
        list(backend.infer_stream(broken()))
    with pytest.raises(BackendError, match="does not fit"):
        list(backend.infer_stream(iter([_x(2), np.zeros((2, 4, 4, 1), np.float32)])))
    fresh = base.create("openvino")
    with pytest.raises(BackendError, match="before load"):
        list(fresh.infer_stream(iter([_x(1)])))  # type: ignore[attr-defined]


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_closed_backends_refuse_calls(models: Path, runtime: str) -> None:
    backend = _backend(models, runtime)
    backend.infer(_x(1))
    backend.close()
    for call in (backend.infer, backend.infer_generic):
        with pytest.raises(BackendError, match="before load"):
            call(_x(1))
