"""The public Python API (edge.load_model, Model) on the real reference bundles, every
runtime and precision: verification before anything loads, predictions, batches, the
throughput stream, and clear errors for bad arguments and inputs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import edge
from edge.bundle import read_manifest
from edge.errors import BackendError, BundleError, ConfigError, EdgekitError, InputError
from edge.runtime import (
    MAX_STREAM_BATCH,
    Model,
    Predictor,
    UnverifiedBundleWarning,
    golden_check,
    load_model,
)
from tests.edge.bundle_helpers import make_keys, replace_member

MODELS = Path(__file__).resolve().parents[3] / "models"
DIGITS, TABULAR, PUB = MODELS / "digits.ekb", MODELS / "tabular.ekb", MODELS / "dev-signing.pub"
pytestmark = pytest.mark.skipif(not DIGITS.exists(), reason="models/digits.ekb not built")
TARGETS = [a.target for a in read_manifest(DIGITS).artifacts] if DIGITS.exists() else []


def digit(seed: int) -> np.ndarray:
    """One raw 8x8 digit (values 0..16), as a camera-less client would send it."""
    return np.random.default_rng(seed).integers(0, 17, (8, 8)).astype(np.float32)


@pytest.fixture(scope="module", params=TARGETS)
def model(request: pytest.FixtureRequest) -> Iterator[Model]:
    runtime, precision = request.param.split("-")
    with load_model(DIGITS, PUB, runtime=runtime, precision=precision, threads=1) as m:
        yield m


def test_public_api_on_every_variant(model: Model) -> None:
    assert model.variant.target == f"{model.variant.runtime}-{model.variant.precision}"
    assert model.variant.threads == 1 and model.labels == [str(i) for i in range(10)]
    assert model.manifest.name == "digits" and isinstance(model, Predictor)
    golden_check(model, per_sample=True)  # the variant answers like the float model
    raws = [digit(i) for i in range(5)]
    single = [model.predict(r) for r in raws]
    batch = model.predict_batch(raws)
    assert [p.label for p in batch] == [p.label for p in single]
    for one, many in zip(single, batch, strict=True):
        assert np.allclose(one.scores, many.scores, atol=1e-5)
        assert one.label == str(one.index) and len(one.scores) == 10 and one.latency_ms > 0
    # infer: model-domain float32 in (the manifest's formula, here x / 16), scores out
    x = np.stack([r[..., None] / np.float32(16) for r in raws]).astype(np.float32)
    scores = model.infer(x)
    assert scores.dtype == np.float32 and scores.shape == (5, 10)
    assert np.allclose(scores, [p.scores for p in batch], atol=1e-5)
    again = model.infer(x)
    assert again is not scores and np.array_equal(again, scores)  # callers keep results


def test_stream_keeps_order_across_batches(model: Model) -> None:
    frames = [digit(100 + i) for i in range(21)]  # 8 + 8 + 5: a short last batch
    # the same batch sizes as the stream runs (a runtime may compute another size's
    # batch with other kernels, so the last digits may differ between sizes)
    want = [p.scores for s in (0, 8, 16) for p in model.predict_batch(frames[s : s + 8])]
    got = list(model.stream(iter(frames), batch=8))
    assert len(got) == 21
    assert all(np.allclose(g.scores, w, atol=1e-5) for g, w in zip(got, want, strict=True))
    singles = [model.predict(f).scores for f in frames]
    by_one = [p.scores for p in model.stream(frames, batch=1)]
    assert all(np.allclose(g, w, atol=1e-5) for g, w in zip(by_one, singles, strict=True))


def test_bad_inputs_are_named_not_crashes(model: Model) -> None:
    cases: list[tuple[Callable[[], Any], str | None, str]] = [
        (lambda: model.predict([1, 2, 3]), "shape", "does not fit"),
        (lambda: model.predict("seven"), "dtype", "numbers"),
        (lambda: model.predict(np.full((8, 8), np.nan)), "nan", "NaN"),
        (lambda: model.predict(np.zeros((2, 8, 8, 1))), "shape", "batch of 2"),
        (lambda: model.predict_batch([digit(0), [[1, "x"]]]), "dtype", "sample 1"),
        (lambda: model.predict_batch([]), "shape", "empty"),
        (lambda: model.predict_batch({"a": 1}), "shape", "list of inputs"),
        (lambda: next(model.stream([digit(0)] * 12 + [[0] * 3], batch=4)), None, ""),
    ]
    for call, code, text in cases:
        if code is None:
            call()  # the first batch is fine; the bad frame is only reached later
            continue
        with pytest.raises(InputError) as info:
            call()
        assert info.value.code == code and text in str(info.value), str(info.value)
    with pytest.raises(InputError, match="sample 12"):
        list(model.stream([digit(0)] * 12 + [[0] * 3], batch=4))
    with pytest.raises(BackendError, match="does not fit"):
        model.infer(np.zeros((1, 4, 4, 1), np.float32))
    with pytest.raises(ConfigError, match="stream batch"):
        model.stream([], batch=0)  # refused at the call, not at the first frame
    with pytest.raises(ConfigError, match="stream batch"):
        model.stream([], batch=MAX_STREAM_BATCH + 1)


def test_close_releases_and_later_calls_say_so(tmp_path: Path) -> None:
    tempfile.tempdir = str(tmp_path)  # where load_model extracts the .ekb
    try:
        model = load_model(DIGITS, PUB, runtime="onnxruntime")
        assert next(p.name for p in tmp_path.iterdir()).startswith("edgekit-model-")
        model.close()
    finally:
        tempfile.tempdir = None
    assert list(tmp_path.iterdir()) == []  # the extracted copy is gone
    with pytest.raises(BackendError, match="closed"):
        model.infer(np.zeros((1, 8, 8, 1), np.float32))
    with pytest.raises(BackendError, match="closed"):
        model.predict(digit(0))


def test_a_directory_bundle_is_verified_too(tmp_path: Path) -> None:
    from edge.bundle import extract_bundle

    dest = tmp_path / "digits"
    manifest = extract_bundle(DIGITS, dest, PUB)
    with load_model(dest, PUB, runtime="litert", precision="fp32") as m:
        assert m.bundle_dir == dest and m.predict(digit(1)).label
    (dest / manifest.artifacts[0].file).write_bytes(b"tampered")
    with pytest.raises(BundleError, match=r"sha256|size"):
        load_model(dest, PUB)


def test_unsigned_load_warns_in_logs_and_warnings(caplog: pytest.LogCaptureFixture) -> None:
    with (
        caplog.at_level(logging.WARNING, "edge.runtime.model"),
        pytest.warns(UnverifiedBundleWarning, match=r"signature .*NOT checked"),
    ):
        model = load_model(DIGITS, None, runtime="onnxruntime")
    model.close()
    assert any("NOT checked" in r.getMessage() for r in caplog.records)


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    cases = [
        (dict(bundle=tmp_path / "none.ekb", trusted_key=PUB), BundleError, "does not exist"),
        (dict(bundle=DIGITS, trusted_key=tmp_path / "none.pub"), EdgekitError, "none.pub"),
        (dict(bundle=DIGITS, trusted_key=PUB, threads=0), ConfigError, "at least 1"),
        (dict(bundle=DIGITS, trusted_key=PUB, threads="2"), ConfigError, "whole number"),
        (dict(bundle=DIGITS, trusted_key=PUB, runtime="tensorrt"), ConfigError, "unknown runtime"),
        (dict(bundle=DIGITS, trusted_key=PUB, precision="fp16"), ConfigError, "precision"),
        (dict(bundle=DIGITS, trusted_key=PUB, input_guard="loud"), ConfigError, "guard"),
    ]
    for kwargs, error, text in cases:
        with pytest.raises(error, match=text):
            load_model(**kwargs)  # type: ignore[arg-type]


def _loads_nothing(bundle: Path, key: Path) -> dict[str, object]:
    """Run load_model in a fresh interpreter: the error it raised and whether any runtime
    package was imported (nothing may load before the bundle verifies)."""
    code = (
        "import json, sys\n"
        "from edge import load_model\n"
        "try:\n"
        f"    load_model({str(bundle)!r}, {str(key)!r})\n"
        "    err = None\n"
        "except Exception as exc:\n"
        "    err = f'{type(exc).__name__}: {exc}'\n"
        "mods = ('ai_edge_litert', 'tflite_runtime', 'onnxruntime', 'openvino')\n"
        "print(json.dumps({'error': err, 'imported': [m for m in mods if m in sys.modules]}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_tampered_or_wrongly_signed_bundle_loads_nothing(tmp_path: Path) -> None:
    manifest = read_manifest(DIGITS)
    model_file = manifest.artifacts[0].file
    tampered = replace_member(DIGITS, tmp_path / "tampered.ekb", model_file, b"\x00" * 64)
    got = _loads_nothing(tampered, PUB)
    assert got["imported"] == [] and "IntegrityError" in str(got["error"]), got
    assert model_file in str(got["error"])
    _priv, other = make_keys(tmp_path, "other")
    got = _loads_nothing(DIGITS, other)
    assert got["imported"] == [] and "does not verify" in str(got["error"]), got


def test_import_edge_stays_light() -> None:
    code = (
        "import sys, edge\n"
        "light = not any(m in sys.modules for m in ('numpy', 'edge.runtime'))\n"
        "from edge import load_model, Model, Variant\n"
        "print(light, load_model.__module__, 'load_model' in dir(edge))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["True", "edge.runtime.model", "True"], out.stderr
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        edge.nothing  # noqa: B018


@pytest.mark.skipif(not TABULAR.exists(), reason="models/tabular.ekb not built")
def test_tabular_batch_warns_per_sample_and_refuses_with_the_sample() -> None:
    with load_model(TABULAR, PUB, runtime="onnxruntime", precision="fp32") as m:
        pre = m.manifest.preprocessing
        typical = dict(zip(pre["features"], pre["mean"], strict=True))
        absurd = {**typical, "mean_radius": 1e30}
        preds = m.predict_batch([typical, absurd, typical])
        assert [bool(p.warnings) for p in preds] == [False, True, False]
        assert "mean_radius" in preds[1].warnings[0]
        streamed = list(m.stream([typical, absurd, typical], batch=2))
        assert [bool(p.warnings) for p in streamed] == [False, True, False]
    with load_model(TABULAR, PUB, runtime="litert", input_guard="refuse") as m:
        with pytest.raises(InputError) as info:
            m.predict_batch([typical, absurd])
        assert info.value.code == "range" and "(sample 1)" in str(info.value)
