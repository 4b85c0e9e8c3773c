"""Bad ``edgekit export`` input fails fast with one clear line and no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    rc = main(["export", *args])
    err = capsys.readouterr().err
    return rc, err


def _base(run_dir: Path, tmp_path: Path) -> list[str]:
    return [str(run_dir), "--out", str(tmp_path / "b.ekb"), "--name", "digits", "--version", "1"]


@pytest.fixture
def incomplete_run(tmp_path: Path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"labels": ["a", "b"]}))
    return run


def test_missing_key_tells_how_to_make_one(
    capsys: pytest.CaptureFixture[str], incomplete_run: Path, tmp_path: Path
) -> None:
    rc, err = _run(capsys, *_base(incomplete_run, tmp_path))
    assert rc == 1
    assert err.startswith("error: a bundle is always signed")
    assert "edgekit keys generate --out DIR" in err
    assert "Traceback" not in err
    assert not (tmp_path / "b.ekb").exists()


def test_unknown_target_lists_valid_ones(
    capsys: pytest.CaptureFixture[str],
    incomplete_run: Path,
    tmp_path: Path,
    keypair: tuple[Path, Path],
) -> None:
    args = [*_base(incomplete_run, tmp_path), "--key", str(keypair[0])]
    rc, err = _run(capsys, *args, "--targets", "litert-fp32,tensorrt-int4")
    assert rc == 1
    assert "unknown target(s) tensorrt-int4" in err
    for valid in ("litert-int8", "onnxruntime-fp32", "openvino-int8"):
        assert valid in err


def test_incomplete_run_dir_names_missing_files(
    capsys: pytest.CaptureFixture[str],
    incomplete_run: Path,
    tmp_path: Path,
    keypair: tuple[Path, Path],
) -> None:
    rc, err = _run(capsys, *_base(incomplete_run, tmp_path), "--key", str(keypair[0]))
    assert rc == 1
    assert "incomplete" in err
    assert "model.keras" in err and "data.npz" in err and "reference.json" in err
    assert len(err.strip().splitlines()) == 1


def test_missing_run_dir(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    rc, err = _run(capsys, *_base(tmp_path / "nope", tmp_path), "--key", str(keypair[0]))
    assert rc == 1 and "does not exist" in err


@pytest.mark.parametrize("version", ["0", "-3"])
def test_version_must_be_positive(
    capsys: pytest.CaptureFixture[str],
    incomplete_run: Path,
    tmp_path: Path,
    keypair: tuple[Path, Path],
    version: str,
) -> None:
    args = _base(incomplete_run, tmp_path)
    args[args.index("--version") + 1] = version
    rc, err = _run(capsys, *args, "--key", str(keypair[0]))
    assert rc == 1
    assert "--version must be an integer >= 1" in err


def test_public_key_given_as_signing_key(
    capsys: pytest.CaptureFixture[str],
    incomplete_run: Path,
    tmp_path: Path,
    keypair: tuple[Path, Path],
) -> None:
    rc, err = _run(capsys, *_base(incomplete_run, tmp_path), "--key", str(keypair[1]))
    assert rc == 1 and "public key" in err


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_gate_must_be_finite(
    capsys: pytest.CaptureFixture[str],
    incomplete_run: Path,
    tmp_path: Path,
    keypair: tuple[Path, Path],
    value: str,
) -> None:
    args = [*_base(incomplete_run, tmp_path), "--key", str(keypair[0])]
    rc, err = _run(capsys, *args, "--max-accuracy-drop", value)
    assert rc == 1 and "finite" in err


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--min-agreement", "1.5"),
        ("--min-agreement", "nan"),
        ("--min-class-agreement", "-0.1"),
        ("--gate-confidence", "1"),
        ("--gate-confidence", "0.3"),
    ],
)
def test_gate_flags_are_checked_before_any_work(
    capsys: pytest.CaptureFixture[str],
    incomplete_run: Path,
    tmp_path: Path,
    keypair: tuple[Path, Path],
    flag: str,
    value: str,
) -> None:
    args = [*_base(incomplete_run, tmp_path), "--key", str(keypair[0])]
    rc, err = _run(capsys, *args, flag, value)
    assert rc == 1
    assert err.startswith(f"error: {flag} must be a finite number in ")
    assert "incomplete" not in err  # refused before the run dir is even read


def test_bad_name_and_golden_size(
    capsys: pytest.CaptureFixture[str],
    incomplete_run: Path,
    tmp_path: Path,
    keypair: tuple[Path, Path],
) -> None:
    args = [*_base(incomplete_run, tmp_path), "--key", str(keypair[0])]
    bad_name = list(args)
    bad_name[bad_name.index("--name") + 1] = "../evil"
    rc, err = _run(capsys, *bad_name)
    assert rc == 1 and "--name" in err
    rc, err = _run(capsys, *args, "--golden-size", "0")
    assert rc == 1 and "--golden-size" in err


def test_broken_data_npz(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, keypair: tuple[Path, Path]
) -> None:
    run = tmp_path / "run"
    run.mkdir()
    run_json = {"labels": ["a", "b"], "input": {}, "output": {}, "preprocessing": {}}
    (run / "run.json").write_text(json.dumps(run_json))
    (run / "reference.json").write_text("{}")
    (run / "model.keras").write_bytes(b"not a model")
    np.savez(run / "data.npz", x_train=np.zeros((4, 3), np.float32), y_train=np.zeros(4))
    rc, err = _run(capsys, *_base(run, tmp_path), "--key", str(keypair[0]))
    assert rc == 1
    assert "lacks array(s)" in err and "x_test" in err


def test_bad_card_info_fails_before_any_work(
    capsys: pytest.CaptureFixture[str],
    incomplete_run: Path,
    tmp_path: Path,
    keypair: tuple[Path, Path],
) -> None:
    card = tmp_path / "card.toml"
    card.write_text('owners = ["a"]\nintended_use = ["typo"]\n')
    args = [*_base(incomplete_run, tmp_path), "--key", str(keypair[0])]
    rc, err = _run(capsys, *args, "--card-info", str(card))
    assert rc == 1 and "Traceback" not in err
    assert "unknown card info key(s) 'intended_use' (did you mean 'intended_uses'?)" in err
    rc, err = _run(capsys, *args, "--card-info", str(tmp_path / "card.yaml"))
    assert rc == 1 and "use a .toml or .json file" in err
