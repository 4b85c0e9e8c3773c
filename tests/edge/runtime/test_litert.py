"""LiteRT backend at the floor: fast path == documented API, int8 quantised like LiteRT.

The Quantizer tests need no TensorFlow; the rest build small real models with it (slow).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.errors import BackendError
from edge.runtime.backends.quant import Quantizer
from tests.edge import tiny_models

F32 = np.float32


# ------------------------------------------------------------------ Quantizer (no TF)


def test_quantizer_rounds_half_to_even_after_the_reciprocal_and_saturates() -> None:
    q = Quantizer(0.5, -1, "int8")
    x = np.array([0.25, 0.75, -0.25, 1.25, -100.0, 100.0, 0.0], F32)  # x/0.5: halves
    assert q(x).tolist() == [-1, 1, -1, 1, -128, 127, -1]
    assert Quantizer(0.5, 200, "uint8")(np.array([-200.0, 0.25, 100.0], F32)).tolist() == [
        0,
        200,
        255,
    ]


def test_quantizer_multiplies_by_the_float32_reciprocal_like_the_runtime() -> None:
    """x / s and x * (1/s) round differently on some near-ties; LiteRT multiplies."""
    s = F32(0.007843137718737125)
    k = np.arange(-128, 127)
    x = np.concatenate([np.nextafter(((k + 0.5) * s).astype(F32), F32(d)) for d in (-1, 1)])
    q = Quantizer(float(s), 0, "int8")(x).astype(np.int32)
    assert np.array_equal(q, np.clip(np.rint(x * (F32(1) / s)), -128, 127))
    assert not np.array_equal(q, np.clip(np.rint(x / s), -128, 127))


def test_quantizing_into_a_buffer_gives_the_same_integers_and_may_reuse_the_input() -> None:
    rng = np.random.default_rng(0)
    q = Quantizer(0.02, 3, "int8")
    x = (rng.integers(-200, 200, (4, 8, 8, 1)) * F32(0.01)).astype(F32)  # many ties
    out, scratch = np.empty(x.shape, np.int8), np.empty(x.shape, F32)
    q.into(x, out, scratch)
    assert np.array_equal(out, q(x))
    same = x.copy()
    q.into(same, out, same)  # scratch == input: overwritten, result unchanged
    assert np.array_equal(out, q(x))


@pytest.mark.parametrize(
    ("scale", "dtype", "match"),
    [(0.0, "int8", "scale"), (float("nan"), "int8", "scale"), (0.1, "int4", "int4")],
)
def test_quantizer_refuses_bad_parameters(scale: float, dtype: str, match: str) -> None:
    with pytest.raises(BackendError, match=match):
        Quantizer(scale, 0, dtype)


# ------------------------------------------------------------------ real models (TF)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tiny_models.TinyModels:
    pytest.importorskip("tensorflow", reason="TensorFlow is needed to build the test models")
    pytest.importorskip("ai_edge_litert")
    return tiny_models.get(tmp_path_factory.getbasetemp() / "tiny-models")


@pytest.fixture(scope="module")
def identity_float_io(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full-integer model with float I/O that only quantises and dequantises its input
    (QUANTIZE -> MAX_POOL_2D 1x1 -> DEQUANTIZE): its output reveals LiteRT's integers."""
    pytest.importorskip("tensorflow", reason="TensorFlow is needed to build the test model")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    cal = np.random.default_rng(0).uniform(-1, 1, (32, 1, 512, 1)).astype(F32)
    cal[0, 0, :2, 0] = (-1, 1)
    model = keras.Sequential([keras.Input((1, 512, 1)), keras.layers.MaxPooling2D((1, 1))])
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([s[None]] for s in cal)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path = tmp_path_factory.mktemp("identity") / "identity.tflite"
    path.write_bytes(conv.convert())
    return path


def _backend(path: Path, threads: int | None = 1) -> Any:
    from edge.runtime.backends.litert import LiteRTBackend

    backend = LiteRTBackend(threads=threads)
    backend.load(path)
    return backend


def _batch(tiny: tiny_models.TinyModels, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.ascontiguousarray(tiny.x[rng.integers(0, len(tiny.x), n)] + F32(0.01))


@pytest.mark.slow
@pytest.mark.parametrize("target", ["litert-fp32", "litert-int8"])
def test_fast_path_equals_the_documented_api_exactly(
    tiny: tiny_models.TinyModels, target: str
) -> None:
    backend = _backend(tiny.files[target])
    for n in (1, 3, 8, 1, 3):
        x = _batch(tiny, n, seed=n)
        fast, generic = backend.infer(x), backend.infer_generic(x)
        assert fast.dtype == np.float32 and fast.shape == (n, 3)
        assert np.array_equal(fast, generic), (target, n)


@pytest.mark.slow
def test_int8_inputs_are_quantised_exactly_as_litert_quantises_them(
    identity_float_io: Path,
) -> None:
    """The integers LiteRT's own QUANTIZE op (XNNPACK, and the builtin kernel) makes are the
    ones the backend writes into an int8 input: camera-like values land on exact halves."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, 512).astype(F32) / F32(127.5) - F32(1)  # exact halves
    uniform = rng.uniform(-1.3, 1.3, 512).astype(F32)
    kinds = (OpResolverType.AUTO, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    for kind in (*kinds, OpResolverType.BUILTIN_REF):
        interp = Interpreter(model_path=str(identity_float_io), experimental_op_resolver_type=kind)
        interp.allocate_tensors()
        quant_out = interp.get_tensor_details()[interp._get_ops_details()[0]["outputs"][0]]
        scale, zero_point = quant_out["quantization"]
        ours = Quantizer(scale, zero_point, "int8")
        ties = ((rng.integers(-128, 127, 512) + 0.5) * F32(ours.scale)).astype(F32)
        near_ties = np.nextafter(ties, np.where(rng.random(512) < 0.5, F32(-2), F32(2)))
        if kind in kinds:  # what runs by default: every integer the same
            for x in (pixels, uniform, ties, near_ties):
                assert np.array_equal(ours(x), _litert_integers(interp, ours, x)), kind
        else:  # TFLite's reference kernel rounds half away from zero instead
            for x, equal in ((pixels, False), (ties, False), (uniform, True)):
                assert np.array_equal(ours(x), _litert_integers(interp, ours, x)) is equal


def _litert_integers(interp: Any, q: Quantizer, x: np.ndarray) -> np.ndarray:
    """The integers the identity model's QUANTIZE op made of ``x`` (from its output)."""
    interp.set_tensor(interp.get_input_details()[0]["index"], x.reshape(1, 1, -1, 1))
    interp.invoke()
    out = interp.get_tensor(interp.get_output_details()[0]["index"]).reshape(-1)
    return (np.rint(out / F32(q.scale)) + q.zero_point).astype(np.int8)


@pytest.mark.slow
def test_a_float_io_model_and_our_quantising_of_an_int8_io_model_agree(
    tiny: tiny_models.TinyModels, tmp_path: Path
) -> None:
    """The same int8 graph both ways: float I/O (quantised inside) vs int8 I/O (by us)."""
    pytest.importorskip("tensorflow")
    import tensorflow as tf

    interp = tf.lite.Interpreter(model_path=str(tiny.files["litert-int8"]))
    scale, zero_point = interp.get_input_details()[0]["quantization"]
    int8_io = _backend(tiny.files["litert-int8"])
    x = _batch(tiny, 8)
    q = Quantizer(scale, zero_point, "int8")
    round_trip = ((q(x).astype(F32) - zero_point) * F32(scale)).astype(F32)
    assert np.array_equal(int8_io.infer(round_trip), int8_io.infer(x))  # same integers in


@pytest.mark.slow
def test_one_interpreter_per_batch_size_is_made_once_and_a_few_are_kept(
    tiny: tiny_models.TinyModels,
) -> None:
    from edge.runtime.backends.litert import MAX_BATCH_SHAPES

    backend = _backend(tiny.files["litert-int8"])
    assert backend.describe()["batch_shapes"] == [1]
    backend.infer(_batch(tiny, 4))
    four = backend._slots[4]
    backend.infer(_batch(tiny, 1))
    backend.infer(_batch(tiny, 4))
    assert backend._slots[4] is four  # cached, not resized back and forth
    for n in range(5, 5 + MAX_BATCH_SHAPES):
        backend.infer(_batch(tiny, n))
    shapes = backend.describe()["batch_shapes"]
    assert len(shapes) == MAX_BATCH_SHAPES and 1 in shapes and 4 not in shapes
    assert np.array_equal(backend.infer(_batch(tiny, 4)), backend.infer_generic(_batch(tiny, 4)))


@pytest.mark.slow
def test_the_kept_input_view_is_where_the_interpreter_reads(
    tiny: tiny_models.TinyModels,
) -> None:
    """LiteRT moves tensors on the first run after allocating (measured on these models):
    the view kept by a slot must still be the tensor's buffer after many runs."""
    backend = _backend(tiny.files["litert-fp32"])
    backend.infer(_batch(tiny, 2))
    for slot in backend._slots.values():
        for _ in range(50):
            backend.infer(np.zeros(slot.shape, F32))
        native = slot.interp._interpreter
        fresh = native.tensor(native, backend._in_index)
        assert fresh.ctypes.data == slot.view.ctypes.data
        del fresh


@pytest.mark.slow
def test_inputs_needing_conversion_give_the_same_scores(tiny: tiny_models.TinyModels) -> None:
    backend = _backend(tiny.files["litert-int8"])
    x = _batch(tiny, 3)
    expected = backend.infer(x)
    assert np.array_equal(backend.infer(x.astype(np.float64)), expected)
    strided = np.repeat(x, 2, axis=0)[::2]
    assert not strided.flags.c_contiguous
    assert np.array_equal(backend.infer(strided), expected)
    assert np.array_equal(backend.infer(x.tolist()), expected)


@pytest.mark.slow
def test_results_are_fresh_arrays_the_caller_keeps(tiny: tiny_models.TinyModels) -> None:
    for target in ("litert-fp32", "litert-int8"):
        backend = _backend(tiny.files[target])
        a = backend.infer(_batch(tiny, 1, seed=1))
        kept = a.copy()
        backend.infer(_batch(tiny, 1, seed=2))
        assert np.array_equal(a, kept) and a.flags.writeable and a.flags.owndata


@pytest.mark.slow
def test_bad_inputs_and_misuse_are_clear_errors(tiny: tiny_models.TinyModels) -> None:
    from edge.runtime.backends.litert import LiteRTBackend

    backend = _backend(tiny.files["litert-int8"])
    with pytest.raises(BackendError, match="sample shape"):
        backend.infer(np.zeros((1, 8, 8, 2), F32))
    with pytest.raises(BackendError, match="sample shape"):
        backend.infer(np.zeros((1, 1, 8, 1), F32))  # would broadcast into the view
    with pytest.raises(BackendError, match="non-empty"):
        backend.infer(np.zeros((0, 8, 8, 1), F32))
    with pytest.raises(BackendError, match="sample shape"):
        backend.infer(np.float32(1.0))
    with pytest.raises(BackendError, match="before load"):
        LiteRTBackend().infer(np.zeros((1, 8, 8, 1), F32))
    with pytest.raises(BackendError, match="before load"):
        LiteRTBackend().infer_generic(np.zeros((1, 8, 8, 1), F32))
    with pytest.raises(BackendError, match="at least 1"):
        LiteRTBackend(threads=0)
    backend.close()
    with pytest.raises(BackendError, match="before load"):
        backend.infer(np.zeros((1, 8, 8, 1), F32))


@pytest.mark.slow
def test_int8_models_can_be_filled_in_place_too(tiny: tiny_models.TinyModels) -> None:
    backend = _backend(tiny.files["litert-int8"])
    x = _batch(tiny, 1)
    assert backend.fillable

    def fill(buffer: np.ndarray) -> bool:
        buffer[...] = x[0]
        return True

    assert np.array_equal(backend.fill_and_infer(fill), backend.infer(x))
    assert backend.fill_and_infer(lambda _b: False) is None


@pytest.mark.slow
@pytest.mark.parametrize("threads", [None, 1, 2])
def test_describe_reports_the_threads_used(tiny: tiny_models.TinyModels, threads: Any) -> None:
    assert _backend(tiny.files["litert-fp32"], threads).describe()["threads"] == (threads or 1)


@pytest.mark.slow
@pytest.mark.parametrize("target", ["litert-fp32", "litert-int8"])
def test_threads_sharing_one_backend_each_get_their_own_answers(
    tiny: tiny_models.TinyModels, target: str
) -> None:
    """The fast path takes an interpreter without a lock (a one-token free list): four
    threads on five batch shapes (more than are kept, so interpreters are evicted mid-run)
    and one filling in place each get exactly the documented API's scores."""
    backend = _backend(tiny.files[target], 2)
    inputs = [_batch(tiny, n, seed) for seed, n in enumerate((1, 1, 3, 2, 5, 8, 1))]
    expected = [backend.infer_generic(x) for x in inputs]
    failures: list[str] = []
    start = threading.Barrier(5)

    def worker(k: int) -> None:
        start.wait()
        for i in range(80):
            j = (k + i) % len(inputs)
            if not np.array_equal(backend.infer(inputs[j]), expected[j]):
                failures.append(f"thread {k} call {i}: input {j}")

    def filler() -> None:
        start.wait()
        for i in range(80):
            sample = inputs[i % 2][0]  # inputs 0 and 1: one sample each

            def fill(buffer: np.ndarray, sample: np.ndarray = sample) -> bool:
                buffer[...] = sample
                return True

            if not np.array_equal(backend.fill_and_infer(fill), expected[i % 2]):
                failures.append(f"filler call {i}: input {i % 2}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    threads.append(threading.Thread(target=filler))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert failures == []
