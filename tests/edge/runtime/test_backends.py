"""Backend contract tests, parametrised over every runtime installed here.

Models are built with TensorFlow in a session fixture (slow); without TF they skip.
The quantisation helpers and missing-runtime reporting are tested without TF.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from edge.contract import Artifact, TensorSpec
from edge.errors import BackendError, RuntimeMissingError
from edge.runtime.backends import base
from edge.runtime.backends.quant import (
    artifact_quant,
    dequantize,
    quantize,
    run_batch,
    run_in_chunks,
)
from tests.edge import tiny_models

TARGETS = ["litert-fp32", "litert-int8", "onnxruntime-fp32", "openvino-fp32"]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tiny_models.TinyModels:
    pytest.importorskip("tensorflow", reason="TensorFlow is needed to build the test models")
    return tiny_models.get(tmp_path_factory.getbasetemp() / "tiny-models")


def _loaded(tiny: tiny_models.TinyModels, target: str, threads: int | None = 1) -> base.Backend:
    runtime = target.split("-")[0]
    if not base.available()[runtime]["available"]:
        pytest.skip(f"{runtime} is not installed here")
    if target not in tiny.files:
        pytest.skip(f"no {target} model could be built here")
    backend = base.create(runtime, threads=threads)
    backend.load(tiny.files[target], _artifact(target, *tiny.specs[target]))
    return backend


def _artifact(target: str, inputs: list[TensorSpec], outputs: list[TensorSpec]) -> Artifact:
    runtime, precision = target.split("-")
    return Artifact(f"models/{target}", runtime, precision, "0" * 64, 0, {}, inputs, outputs)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_outputs_match_the_float_model(tiny: tiny_models.TinyModels, target: str) -> None:
    backend = _loaded(tiny, target)
    y = backend.infer(tiny.x)
    assert y.dtype == np.float32 and y.shape == tiny.reference.shape
    agree = np.mean(y.argmax(1) == tiny.reference.argmax(1))
    if target.endswith("int8"):
        assert np.mean(np.abs(y - tiny.reference)) < 0.03 and agree >= 0.9
    else:
        np.testing.assert_allclose(y, tiny.reference, atol=1e-4)
    backend.close()


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_any_batch_size_gives_per_sample_results(tiny: tiny_models.TinyModels, target: str) -> None:
    backend = _loaded(tiny, target)
    singles = np.concatenate([backend.infer(tiny.x[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(backend.infer(tiny.x[:5]), singles, atol=1e-5)
    np.testing.assert_allclose(backend.infer(tiny.x[:1]), singles[:1], atol=1e-5)
    assert backend.infer(np.concatenate([tiny.x] * 3)).shape == (48, 3)


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_describe_and_bad_inputs(tiny: tiny_models.TinyModels, target: str) -> None:
    backend = _loaded(tiny, target, threads=2)
    info = backend.describe()
    assert info["runtime"] == target.split("-")[0]
    assert info["version"] and info["device"] == "CPU" and info["threads"] == 2
    with pytest.raises(BackendError, match="does not fit"):
        backend.infer(np.zeros((1, 4, 4, 1), dtype=np.float32))
    with pytest.raises(BackendError, match="non-empty batch"):
        backend.infer(np.zeros((0, 8, 8, 1), dtype=np.float32))


@pytest.mark.parametrize("runtime", ["litert", "onnxruntime", "openvino"])
def test_load_failures_are_backend_errors(tmp_path: Path, runtime: str) -> None:
    if not base.available()[runtime]["available"]:
        pytest.skip(f"{runtime} is not installed here")
    backend = base.create(runtime)
    with pytest.raises(BackendError, match="before load"):
        backend.infer(np.zeros((1, 2), dtype=np.float32))
    junk = tmp_path / {"litert": "m.tflite", "onnxruntime": "m.onnx", "openvino": "m.xml"}[runtime]
    junk.write_bytes(b"this is not a model")
    with pytest.raises(BackendError, match="m\\."):
        backend.load(junk, _artifact(f"{runtime}-fp32", [], []))
    with pytest.raises(BackendError, match="threads"):
        base.create(runtime, threads=0)


@pytest.mark.parametrize("runtime", ["litert", "onnxruntime", "openvino"])
def test_probe_reports_version_and_devices(runtime: str) -> None:
    info = base.available()[runtime]
    if info["available"]:
        assert info["version"] and "CPU" in info["devices"]
    else:
        assert info["reason"]


@pytest.mark.parametrize(
    ("runtime", "package", "hint"),
    [
        ("onnxruntime", "onnxruntime", "pip install onnxruntime"),
        ("openvino", "openvino", "pip install openvino"),
    ],
)
def test_missing_runtime_is_reported_with_a_hint(
    monkeypatch: pytest.MonkeyPatch, runtime: str, package: str, hint: str
) -> None:
    monkeypatch.setitem(sys.modules, package, None)  # makes `import package` fail
    module = importlib.import_module(f"edge.runtime.backends.{runtime}")
    with pytest.raises(RuntimeMissingError, match=hint):
        module.probe()
    with pytest.raises(RuntimeMissingError):
        base.create(runtime)
    assert base.available()[runtime]["available"] is False


def test_missing_litert_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "ai_edge_litert",
        "ai_edge_litert.interpreter",
        "tflite_runtime",
        "tflite_runtime.interpreter",
        "tensorflow",
        "tensorflow.lite",
    ):
        monkeypatch.setitem(sys.modules, name, None)
    from edge.runtime.backends import litert

    with pytest.raises(RuntimeMissingError, match="pip install ai-edge-litert"):
        litert.probe()


def test_unknown_runtime() -> None:
    with pytest.raises(BackendError, match="unknown runtime 'tensorrt'"):
        base.create("tensorrt")


def test_quantise_round_trip_and_saturation() -> None:
    x = np.array([-1.0, 0.0, 0.5, 1.0, 10.0], dtype=np.float32)
    q = quantize(x, 1 / 128, 0, "int8")
    assert q.dtype == np.int8 and q.tolist() == [-128, 0, 64, 127, 127]
    back = dequantize(q, 1 / 128, 0)
    assert back.dtype == np.float32 and back[2] == pytest.approx(0.5)
    assert quantize(np.array([0.0]), 0.1, 128, "uint8").tolist() == [128]
    with pytest.raises(BackendError, match="scale"):
        quantize(x, 0.0, 0, "int8")
    with pytest.raises(BackendError, match="cannot quantise"):
        quantize(x, 1.0, 0, "float8")


def test_run_in_chunks_pads_the_last_slice() -> None:
    calls: list[int] = []

    def fn(part: np.ndarray) -> np.ndarray:
        calls.append(part.shape[0])
        return part * 2

    out = run_in_chunks(fn, np.arange(5, dtype=np.float32)[:, None], 2)
    assert out[:, 0].tolist() == [0, 2, 4, 6, 8] and calls == [2, 2, 2]


def test_run_batch_slices_only_a_fixed_batch_and_wraps_runtime_errors() -> None:
    calls: list[int] = []

    def fn(part: np.ndarray) -> np.ndarray:
        calls.append(part.shape[0])
        return part

    x = np.zeros((3, 1), dtype=np.float32)
    assert run_batch(fn, x, -1, "X").shape == (3, 1) and calls == [3]
    assert run_batch(fn, x, 2, "X").shape == (3, 1) and calls == [3, 2, 2]

    def broken(part: np.ndarray) -> np.ndarray:
        raise RuntimeError("boom")

    with pytest.raises(BackendError, match=r"^X inference failed: boom$"):
        run_batch(broken, x, -1, "X")


def test_artifact_quant_needs_scale_and_zero_point() -> None:
    spec = TensorSpec(name="x", dtype="int8", shape=[-1, 4], scale=0.5, zero_point=-3)
    assert artifact_quant([spec], "input", "m.onnx") == (0.5, -3)
    bare = TensorSpec(name="x", dtype="int8", shape=[-1, 4])
    for specs in ([], [bare]):
        with pytest.raises(BackendError, match=r"m\.onnx: the model's output is integer"):
            artifact_quant(specs, "output", "m.onnx")


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_a_running_inference_can_be_cancelled_from_another_thread(
    tmp_path: Path, runtime: str
) -> None:
    """The serving watchdog's way out of an overdue run: the interrupted call raises, and
    the next one runs normally (a late cancel does not poison it)."""
    import threading

    from tests.bundles import make_onnx

    if not base.available()[runtime]["available"]:
        pytest.skip(f"{runtime} is not installed here")
    model = make_onnx(tmp_path / "slow.onnx", kind="slow")  # ~50 ms of MatMuls
    backend = base.create(runtime, threads=2)
    backend.load(model, _artifact(f"{runtime}-fp32", [], []))
    x = np.zeros((1, 8, 8, 1), np.float32)
    assert backend.infer(x).shape == (1, 10)
    done = threading.Event()

    def keep_cancelling() -> None:  # one that lands between two runs is harmless: again
        while not done.wait(0.003):
            backend.cancel()

    canceller = threading.Thread(target=keep_cancelling)
    canceller.start()
    try:
        with pytest.raises(BackendError, match=r"(?i)terminate|cancel"):
            for _ in range(100):
                backend.infer(x)
    finally:
        done.set()
        canceller.join(5)
    backend.cancel()  # idle: nothing to stop
    assert backend.infer(x).shape == (1, 10)


@pytest.mark.slow  # builds TensorFlow models
def test_runtimes_that_cannot_interrupt_a_run_say_so(
    tiny: tiny_models.TinyModels, tmp_path: Path
) -> None:
    """LiteRT never can; OpenVINO not on one thread (it checks between parallel tasks)."""
    from tests.bundles import make_onnx

    assert _loaded(tiny, "litert-fp32").cancel() is False
    if base.available()["openvino"]["available"]:
        model = make_onnx(tmp_path / "m.onnx")
        for threads, can in ((1, False), (2, True)):
            backend = base.create("openvino", threads=threads)
            backend.load(model, _artifact("openvino-fp32", [], []))
            assert backend.cancel() is can


@pytest.mark.slow  # builds TensorFlow models
def test_litert_fills_its_input_in_place(tiny: tiny_models.TinyModels) -> None:
    backend = _loaded(tiny, "litert-fp32")
    x = np.random.default_rng(0).normal(size=(1, *tiny.specs["litert-fp32"][0][0].shape[1:]))
    x = x.astype(np.float32)
    expected = backend.infer(x)
    backend.infer(np.concatenate([x, x]))  # a batch of 2 resizes the interpreter ...

    def fill(buffer: np.ndarray) -> bool:
        buffer[...] = x[0]
        return True

    got = backend.fill_and_infer(fill)  # type: ignore[attr-defined]
    assert got is not None and np.allclose(got, expected)  # ... and back to one sample
    assert backend.fill_and_infer(lambda _b: False) is None  # type: ignore[attr-defined]
    assert _loaded(tiny, "litert-int8").fillable  # type: ignore[attr-defined]


def test_each_runtime_declares_its_facts_once_in_its_backend_module() -> None:
    from cloud.byom import SUFFIX_RUNTIME
    from cloud.export import MODEL_SUFFIX
    from edge.contract import RUNTIMES
    from edge.runtime import runtime_info
    from edge.runtime.device import RUNTIME_PACKAGES

    infos = {r: runtime_info(r) for r in RUNTIMES}
    assert all(info.name == r for r, info in infos.items())
    assert len({info.suffix for info in infos.values()}) == len(RUNTIMES)
    assert {r: info.suffix for r, info in infos.items()} == MODEL_SUFFIX
    assert {info.suffix: r for r, info in infos.items()} == SUFFIX_RUNTIME
    assert {r: info.packages for r, info in infos.items()} == RUNTIME_PACKAGES
    assert "pip install ai-edge-litert" in infos["litert"].install_hint
    assert "edgekit[openvino]" in infos["openvino"].install_hint
    with pytest.raises(BackendError, match="unknown runtime"):
        runtime_info("tensorrt")
