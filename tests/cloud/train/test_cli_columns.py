"""`edgekit train` --group-column / --exclude-columns / --card-info: one-line errors, no run."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import main

CSV = "id,a,site,label\n" + "".join(
    f"r{i},{i},{'ns'[i % 2]},{'xy'[i % 3 == 0]}\n" for i in range(12)
)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--exclude-columns", "id,,a"], "expected comma-separated column names"),
        (["--exclude-columns", "id,zz"], "unknown column(s) 'zz'; columns present: 'id', 'a'"),
        (["--exclude-columns", "label"], "--exclude-columns cannot hold the label column"),
        (["--group-column", "label"], "--group-column cannot be the label column 'label'"),
        (["--group-column", "nope", "--exclude-columns", "id"], "no group column 'nope'"),
        (["--group-column", "id"], "looks like an identifier"),
        (["--card-info", "missing.toml", "--exclude-columns", "id"], "cannot read"),
        (["--card-info", "{card}"], "unknown card info key(s) 'licence'"),
    ],
)
def test_bad_column_flags_give_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], expected: str
) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text(CSV)
    card = tmp_path / "card.toml"
    card.write_text('licence = "MIT"\n')
    args = [a.replace("{card}", str(card)) for a in extra]
    code: int | str | None
    try:
        code = main(["train", str(csv), "--out", str(tmp_path / "run"), "--quiet", *args])
    except SystemExit as exc:  # argparse usage errors exit 2
        code = exc.code
    assert code in (1, 2)
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    err_lines = [ln for ln in stderr.splitlines() if "error:" in ln]
    assert len(err_lines) == 1 and expected in err_lines[0], stderr
    assert not (tmp_path / "run" / "run.json").exists()


def test_image_datasets_refuse_a_group_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "digits", "--out", str(tmp_path / "run"), "--group-column", "g"])
    assert code == 1
    assert "--group-column needs named columns" in capsys.readouterr().err
