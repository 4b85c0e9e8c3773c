"""The CLI error path: exit code 1, one ``error:`` line, no traceback. Most cases run
``main()`` in-process (the unit tier stays fast); one runs a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import main


def _train(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge.cli", "train", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("content", "extra", "expected"),
    [
        ("a,b\n1,2\n", [], "no label column 'label'; columns present: 'a', 'b'"),
        ("a,label\nx,1\ny,2\n", [], "non-numeric feature columns: a"),
        ("a,label\n1,x\nnan,y\n", [], "1 NaN/inf/missing values in columns a (1)"),
        ("a,label\n1,x\n2,x\n3,x\n", [], "need at least 2 classes"),
        ("a,label\n1,x\n2,x\n3,x\n4,y\n", [], "'y' has 1"),
        ("a,label\n1,x\n2,y\n", ["--arch", "bogus"], "invalid choice"),
        ("a,label\n1,x\n2,y\n", ["--epochs", "0"], "--epochs must be at least 1"),
        ("a,label\n1,x\n2,y\n", ["--epochs", "many"], "a whole number or 'auto', got 'many'"),
        ("a,label\n1,x\n2,y\n", ["--patience", "-1"], "--patience must be 0 or more"),
        ("a,label\n1,x\n2,x\n3,x\n4,y\n5,y\n6,y\n", ["--arch", "cnn"], "needs image data"),
    ],
)
def test_bad_input_gives_one_line_error(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    extra: list[str],
    expected: str,
) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text(content)
    code: int | str | None
    try:
        code = main(["train", str(csv), "--out", str(tmp_path / "run"), "--quiet", *extra])
    except SystemExit as exc:  # argparse usage errors exit 2
        code = exc.code
    assert code in (1, 2)  # 2 = argparse usage error
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    err_lines = [ln for ln in stderr.splitlines() if ln.startswith("error:") or "error:" in ln]
    assert len(err_lines) == 1 and expected in err_lines[0]
    assert not (tmp_path / "run" / "run.json").exists()


def test_data_errors_exit_1(tmp_path: Path) -> None:
    proc = _train(str(tmp_path / "nothing.csv"), "--out", str(tmp_path / "r"))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("error: dataset ")


def test_existing_run_is_not_overwritten(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    proc = _train("digits", "--out", str(run))
    assert proc.returncode == 1 and "already holds a training run" in proc.stderr
    assert (run / "run.json").read_text() == "{}"


@pytest.mark.parametrize(
    ("extra", "epochs", "patience"),
    [
        ([], None, None),  # both auto by default
        (["--epochs", "auto", "--patience", "AUTO"], None, None),
        (["--epochs", "200", "--patience", "0"], 200, 0),
    ],
)
def test_epochs_and_patience_take_a_number_or_auto(
    extra: list[str], epochs: int | None, patience: int | None
) -> None:
    import argparse

    from cloud.train.cli import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["train", "d.csv", "--out", "run", *extra])
    assert (args.epochs, args.patience) == (epochs, patience)
