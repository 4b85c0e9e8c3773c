"""`edgekit predict` through the real CLI entry point."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edge.cli import main
from tests.edge import tiny_models
from tests.edge.bundle_helpers import make_keys


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    pytest.importorskip("tensorflow", reason="TensorFlow is needed to build the test models")
    base = tmp_path_factory.getbasetemp()
    tm = tiny_models.get(base / "tiny-models")
    priv, pub = make_keys(base, "cli-keys")
    return tiny_models.make_signed_bundle(tm, base / "cli.ekb", priv), pub


def _top_image(path: Path) -> Path:
    arr = np.zeros((16, 16), dtype=np.uint8)
    arr[:8] = 230
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    return path


@pytest.mark.slow
def test_predict_json_on_image(
    tmp_path: Path, bundle: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    path, pub = bundle
    img = _top_image(tmp_path / "top.png")
    assert main(["predict", str(path), "--input", str(img), "--key", str(pub), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["label"] == "zero" and len(res["scores"]) == 3
    assert set(res["scores_by_label"]) == {"zero", "one", "two"}
    assert res["runtime"] == "litert" and res["precision"] == "int8" and res["version"] == 1
    assert res["latency_ms"] > 0 and res["signature_verified"] is True


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["litert", "onnxruntime", "openvino"])
def test_predict_pinned_runtime_text_output(
    tmp_path: Path, bundle: tuple[Path, Path], capsys: pytest.CaptureFixture, runtime: str
) -> None:
    path, _pub = bundle
    sample = tmp_path / "x.json"
    rows = np.zeros((8, 8))
    rows[4:] = 15
    sample.write_text(json.dumps(rows.tolist()))
    assert (
        main(
            [
                "predict",
                str(path),
                "--input",
                str(sample),
                "--runtime",
                runtime,
                "--precision",
                "fp32",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert captured.out.startswith("one ") and f"{runtime}-fp32" in captured.out
    assert "signature is NOT checked" in captured.err


@pytest.mark.slow
def test_predict_errors(
    tmp_path: Path, bundle: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    path, _pub = bundle
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2, 3]")
    _priv, other = make_keys(tmp_path, "other")
    cases = [
        (["--input", str(bad)], "does not fit the model input"),
        (["--input", str(tmp_path / "none.png")], "does not exist"),
        (["--input", str(bad), "--key", str(other)], "does not verify with key"),
        (
            ["--input", str(bad), "--runtime", "openvino", "--precision", "int8"],
            "no openvino-int8 variant",
        ),
    ]
    for extra, message in cases:
        assert main(["predict", str(path), *extra]) == 1
        err = capsys.readouterr().err
        assert "error: " in err and message in err and "Traceback" not in err, err


TABULAR = Path(__file__).resolve().parents[3] / "models" / "tabular.ekb"


@pytest.mark.skipif(not TABULAR.exists(), reason="models/tabular.ekb not built")
def test_predict_json_warns_about_an_absurd_value_and_refuse_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sample = tmp_path / "row.json"
    sample.write_text(json.dumps([1e30] * 30))
    assert main(["predict", str(TABULAR), "--input", str(sample), "--json"]) == 0
    captured = capsys.readouterr()
    res = json.loads(captured.out)
    assert len(res["warnings"]) == 1 and "'mean_radius' = 1e+30" in res["warnings"][0]
    assert "warning: feature 'mean_radius'" in captured.err
    args = ["predict", str(TABULAR), "--input", str(sample), "--input-guard", "refuse"]
    assert main(args) == 1
    assert "error: " in capsys.readouterr().err
    assert main([*args[:-1], "off", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []
    assert main([*args, "--input-guard-margin", "-1"]) == 1
    assert "margin must be a number >= 0" in capsys.readouterr().err
