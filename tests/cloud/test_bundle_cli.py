"""`edgekit keys`, `edgekit bundle inspect|verify|create` through the real CLI entry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.bundle import key_id, load_public_key
from edge.cli import main
from edge.runtime import installed_runtime
from tests.edge import tiny_models
from tests.edge.bundle_helpers import make_bundle, read_members, replace_member


def test_keys_generate_and_refuse_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["keys", "generate", "--out", str(tmp_path / "k")]) == 0
    out = capsys.readouterr().out
    kid = key_id(load_public_key(tmp_path / "k" / "edgekit.pub"))
    assert kid in out and "edgekit.key" in out
    assert main(["keys", "generate", "--out", str(tmp_path / "k")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--force" in err and "Traceback" not in err
    assert main(["keys", "generate", "--out", str(tmp_path / "k"), "--force"]) == 0


@pytest.fixture()
def signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    main(["keys", "generate", "--out", str(tmp_path / "k")])
    priv, pub = tmp_path / "k" / "edgekit.key", tmp_path / "k" / "edgekit.pub"
    return make_bundle(tmp_path, priv), priv, pub


def test_verify_ok_and_tampered(
    tmp_path: Path, signed: tuple, capsys: pytest.CaptureFixture
) -> None:
    bundle, _priv, pub = signed
    assert main(["bundle", "verify", str(bundle), "--key", str(pub)]) == 0
    assert "ok: demo v1" in capsys.readouterr().out
    data = dict((m.name, d) for m, d in read_members(bundle))["models/litert-fp32.tflite"]
    assert data is not None
    bad = replace_member(
        bundle,
        tmp_path / "bad.ekb",
        "models/litert-fp32.tflite",
        data[:-1] + bytes([data[-1] ^ 0xFF]),
    )
    assert main(["bundle", "verify", str(bad), "--key", str(pub)]) == 1
    assert capsys.readouterr().err.strip() == "error: models/litert-fp32.tflite: sha256 mismatch"
    assert main(["bundle", "verify", str(bundle), "--key", str(tmp_path / "nope.pub")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["bundle", "verify", str(tmp_path / "none.ekb"), "--key", str(pub)]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_inspect(signed: tuple, capsys: pytest.CaptureFixture) -> None:
    bundle, _priv, _pub = signed
    assert main(["bundle", "inspect", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "demo v1" in out and "litert-fp32" in out and "not verified" in out
    assert main(["bundle", "inspect", str(bundle), "--json"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["name"] == "demo" and obj["signature"]["algorithm"] == "ed25519"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tiny_models.TinyModels:
    pytest.importorskip("tensorflow", reason="TensorFlow is needed to build the test models")
    return tiny_models.get(tmp_path_factory.getbasetemp() / "tiny-models")


@pytest.mark.slow
def test_create_bring_your_own_model(
    tmp_path: Path, tiny: tiny_models.TinyModels, capsys: pytest.CaptureFixture
) -> None:
    main(["keys", "generate", "--out", str(tmp_path / "k")])
    golden = tmp_path / "golden.npy"
    np.save(golden, tiny.x[:6])
    calib = tmp_path / "calib.npy"
    np.save(calib, tiny.x)
    evalf = tmp_path / "eval.npz"
    np.savez(evalf, x=tiny.x, y=tiny.reference.argmax(1))
    pre = tmp_path / "pre.json"
    pre.write_text(json.dumps(tiny_models.PREPROCESSING))
    out = tmp_path / "byom.ekb"
    args = [
        "bundle",
        "create",
        "--name",
        "byom",
        "--version",
        "4",
        "--out",
        str(out),
        "--key",
        str(tmp_path / "k" / "edgekit.key"),
        "--labels",
        "zero,one,two",
        "--golden-inputs",
        str(golden),
        "--calibration",
        str(calib),
        "--eval-data",
        str(evalf),
        "--preprocessing",
        str(pre),
    ]
    for target in ("litert-fp32", "litert-int8", "onnxruntime-fp32", "openvino-fp32"):
        if target in tiny.files:
            args += ["--model", str(tiny.files[target])]
    assert main(args) == 0, capsys.readouterr().err
    assert "wrote" in capsys.readouterr().out
    assert main(["bundle", "verify", str(out), "--key", str(tmp_path / "k" / "edgekit.pub")]) == 0
    capsys.readouterr()
    main(["bundle", "inspect", str(out), "--json"])
    m = json.loads(capsys.readouterr().out)
    targets = {a["runtime"] + "-" + a["precision"]: a for a in m["artifacts"]}
    assert "litert-int8" in targets and "onnxruntime-fp32" in targets
    int8_in = targets["litert-int8"]["inputs"][0]
    assert int8_in["dtype"] == "int8" and "scale" in int8_in and "zero_point" in int8_in
    for a in targets.values():
        assert a["metrics"]["latency_ms"] > 0 and a["metrics"]["accuracy"] == 1.0
        # the runtime that computed the golden outputs is the variant's minimum
        installed = installed_runtime(a["runtime"])
        assert a["metrics"]["requires"] == {
            "runtime_version": installed["version"],
            "runtime_package": installed["package"],
            "arch": None,
        }
    assert m["labels"] == ["zero", "one", "two"] and m["reference"]["file"] == "reference.json"
    assert m["inputs"][0] == {"name": "input", "shape": [1, 8, 8, 1], "dtype": "float32"}

    # The bundle predicts from an image-domain .npy with the given preprocessing.
    sample = tmp_path / "s.npy"
    np.save(sample, (tiny.x[0, :, :, 0] * 16).astype(np.float64))
    assert (
        main(
            [
                "predict",
                str(out),
                "--input",
                str(sample),
                "--json",
                "--key",
                str(tmp_path / "k" / "edgekit.pub"),
            ]
        )
        == 0
    )
    res = json.loads(capsys.readouterr().out)
    assert res["label"] == ["zero", "one", "two"][int(tiny.reference[0].argmax())]
    assert res["version"] == 4


@pytest.mark.slow
def test_create_defaults_and_errors(
    tmp_path: Path, tiny: tiny_models.TinyModels, capsys: pytest.CaptureFixture
) -> None:
    main(["keys", "generate", "--out", str(tmp_path / "k")])
    key = str(tmp_path / "k" / "edgekit.key")
    out = tmp_path / "o.ekb"
    base = ["bundle", "create", "--name", "x", "--version", "1", "--out", str(out), "--key", key]
    assert main([*base, "--model", str(tiny.files["onnxruntime-fp32"])]) == 0
    capsys.readouterr()
    main(["bundle", "inspect", str(out), "--json"])
    m = json.loads(capsys.readouterr().out)
    assert m["labels"] == ["class_0", "class_1", "class_2"]
    assert m["artifacts"][0]["metrics"]["accuracy"] is None
    assert m["lineage"]["golden_inputs"].startswith("random")

    cases = [
        (["--model", str(tmp_path / "m.pt")], "unknown model type"),
        (["--model", str(tmp_path / "none.onnx")], "does not exist"),
        (["--model", str(tiny.files["onnxruntime-fp32"]), "--labels", "a,b"], "2 labels given"),
        (["--model", str(tiny.files["onnxruntime-fp32"]), "--tolerance", "x=1"], "--tolerance"),
        (["--model", str(tiny.files["onnxruntime-fp32"]), "--preprocessing", "{bad"], "JSON"),
    ]
    (tmp_path / "m.pt").write_bytes(b"x")
    for extra, message in cases:
        assert main([*base, *extra]) == 1, extra
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err, err
