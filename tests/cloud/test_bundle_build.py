"""Building bundles: deterministic bytes, manifest first, keys with safe modes."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import numpy as np
import pytest

from cloud.bundle import ArtifactSource, GoldenSet, build_bundle, npz_bytes
from cloud.keys import generate_keypair, load_private_key, sign_manifest
from edge.bundle import extract_bundle, load_public_key, verify_bundle
from edge.bundle.signing import verify_manifest
from edge.contract import TensorSpec
from edge.errors import BundleError, ConfigError, ManifestError, SignatureError
from tests.edge.bundle_helpers import make_bundle, make_keys, read_members


def test_rebuild_gives_identical_bytes(tmp_path: Path) -> None:
    priv, _pub = make_keys(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = hashlib.sha256(make_bundle(tmp_path / "a", priv).read_bytes()).hexdigest()
    a2 = make_bundle(tmp_path / "b", priv)  # other directory, same inputs
    assert hashlib.sha256(a2.read_bytes()).hexdigest() == first
    names = [m.name for m, _ in read_members(a2)]
    assert names[0] == "manifest.json" and names[1:] == sorted(names[1:])
    assert all(m.mtime == read_members(a2)[0][0].mtime and m.uid == 0 for m, _ in read_members(a2))


def test_golden_npz_is_deterministic_and_loadable(tmp_path: Path) -> None:
    arrays = {"inputs": np.arange(6, dtype=np.float32).reshape(2, 3), "labels": np.array([1, 2])}
    assert npz_bytes(arrays) == npz_bytes(arrays)
    path = tmp_path / "g.npz"
    path.write_bytes(npz_bytes(arrays))
    with np.load(path, allow_pickle=False) as npz:
        assert np.array_equal(npz["inputs"], arrays["inputs"])
        assert list(npz["labels"]) == [1, 2]


def test_signature_survives_json_normalisation(tmp_path: Path) -> None:
    """Integer tolerances and numpy metrics become JSON floats; the signature still holds."""
    priv, pub = make_keys(tmp_path)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx")
    out = tmp_path / "b.ekb"
    build_bundle(
        out,
        name="n",
        version=3,
        labels=["x", "y"],
        inputs=[TensorSpec("input", [1, 2], "float32")],
        outputs=[TensorSpec("scores", [1, 2], "float32")],
        preprocessing={"kind": "none"},
        artifacts=[ArtifactSource(model, "onnxruntime", "fp32", {"latency_ms": np.float32(0.5)})],
        private_key=priv,
        golden=GoldenSet(np.zeros((1, 2)), np.ones((1, 2)), tolerance={"max_mean_abs_error": 1}),
    )
    m = verify_bundle(out, pub)
    assert m.artifacts[0].metrics["latency_ms"] == pytest.approx(0.5)
    assert m.golden is not None and m.golden.tolerance == {"max_mean_abs_error": 1.0}
    extract_bundle(out, tmp_path / "x", pub)


def test_builder_refuses_bad_inputs(tmp_path: Path) -> None:
    priv, _ = make_keys(tmp_path)
    model = tmp_path / "m.tflite"
    model.write_bytes(b"m")
    common = dict(
        name="n",
        version=1,
        labels=["a"],
        inputs=[TensorSpec("input", [1, 1], "float32")],
        outputs=[TensorSpec("scores", [1, 1], "float32")],
        preprocessing={},
        private_key=priv,
    )
    with pytest.raises(BundleError, match="at least one model"):
        build_bundle(tmp_path / "o.ekb", artifacts=[], **common)  # type: ignore[arg-type]
    twice = [ArtifactSource(model, "litert", "fp32"), ArtifactSource(model, "litert", "fp32")]
    with pytest.raises(BundleError, match="two artifacts for litert-fp32"):
        build_bundle(tmp_path / "o.ekb", artifacts=twice, **common)  # type: ignore[arg-type]
    one = [ArtifactSource(model, "litert", "fp32")]
    with pytest.raises(Exception, match="unsafe member"):
        build_bundle(tmp_path / "o.ekb", artifacts=one, files={"../x": b""}, **common)  # type: ignore[arg-type]
    with pytest.raises(ManifestError, match="JSON cannot carry"):
        build_bundle(
            tmp_path / "o.ekb",
            artifacts=[ArtifactSource(model, "litert", "fp32", {"accuracy": float("nan")})],
            **common,  # type: ignore[arg-type]
        )
    missing = [ArtifactSource(tmp_path / "nope.tflite", "litert", "fp32")]
    with pytest.raises(BundleError, match="cannot read"):
        build_bundle(tmp_path / "o.ekb", artifacts=missing, **common)  # type: ignore[arg-type]
    assert not (tmp_path / "o.ekb").exists()


def test_keys_are_generated_safely(tmp_path: Path) -> None:
    priv, pub = generate_keypair(tmp_path / "k")
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert "pub" in pub.name and pub.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")
    assert b"BEGIN PRIVATE KEY" in priv.read_bytes()
    with pytest.raises(ConfigError, match="already exists; pass --force"):
        generate_keypair(tmp_path / "k")
    before = priv.read_bytes()
    generate_keypair(tmp_path / "k", force=True)
    assert priv.read_bytes() != before


def test_key_loading_errors(tmp_path: Path) -> None:
    priv, pub = generate_keypair(tmp_path / "k")
    with pytest.raises(SignatureError, match="does not exist"):
        load_private_key(tmp_path / "none.key")
    with pytest.raises(SignatureError, match="is a public key"):
        load_private_key(pub)
    with pytest.raises(SignatureError, match="is a private key"):
        load_public_key(priv)
    junk = tmp_path / "junk.pem"
    junk.write_text("hello")
    with pytest.raises(SignatureError, match="not a PEM"):
        load_private_key(junk)
    with pytest.raises(SignatureError, match="not a PEM or DER public key"):
        load_public_key(junk)
    with pytest.raises(SignatureError, match="directory"):
        load_public_key(tmp_path)
    with pytest.raises(SignatureError, match=r"private key .* is a directory"):
        load_private_key(tmp_path)
    huge = tmp_path / "huge.key"
    huge.write_bytes(b"x" * 20_000)
    for load, what in ((load_private_key, "private"), (load_public_key, "public")):
        with pytest.raises(SignatureError, match=rf"^{what} key file .* 20000 bytes: not a key$"):
            load(huge)


def test_sign_and_verify_manifest_directly(tmp_path: Path) -> None:
    priv_path, pub_path = make_keys(tmp_path)
    out = make_bundle(tmp_path, priv_path)
    m = verify_bundle(out, pub_path)
    resigned = sign_manifest(m, load_private_key(priv_path))
    assert resigned.signature == m.signature  # Ed25519 is deterministic
    assert verify_manifest(resigned, pub_path) == m.signature["key_id"]  # type: ignore[index]


def test_variant_tolerance_is_signed_inside_metrics(tmp_path: Path) -> None:
    """ArtifactSource.tolerance lands in metrics.golden_tolerance (so agents that predate
    it still verify the signature), and the device judges that variant by it."""
    from edge.runtime import Tolerance

    priv, pub = make_keys(tmp_path)
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx")
    out = tmp_path / "b.ekb"
    own = {"max_mean_abs_error": 0.005, "min_top1_agreement": 1}
    build_bundle(
        out,
        name="n",
        version=1,
        labels=["x", "y"],
        inputs=[TensorSpec("input", [1, 2], "float32")],
        outputs=[TensorSpec("scores", [1, 2], "float32")],
        preprocessing={"kind": "none"},
        artifacts=[
            ArtifactSource(model, "onnxruntime", "fp32", {"latency_ms": 0.5}, tolerance=own),
            ArtifactSource(model, "litert", "int8"),
        ],
        private_key=priv,
        golden=GoldenSet(np.zeros((1, 2)), np.ones((1, 2)), tolerance={"max_mean_abs_error": 0.2}),
    )
    m = verify_bundle(out, pub)
    fp32, int8 = m.artifacts
    assert fp32.metrics["golden_tolerance"] == {
        "max_mean_abs_error": 0.005,
        "min_top1_agreement": 1.0,
    }
    assert fp32.tolerance == {"max_mean_abs_error": 0.005, "min_top1_agreement": 1.0}
    assert int8.tolerance is None
    assert Tolerance.of(m, fp32) == Tolerance(0.005, 1.0)
    assert Tolerance.of(m, int8) == Tolerance(0.2, 0.95)  # the shared one, then the default
