"""Card formatting: intervals read the same everywhere, and build-machine paths vanish."""

from __future__ import annotations

import pytest

from cloud.export.card.text import interval, num_ci, pct_ci, scrub, strip_paths, table


def test_numbers_and_intervals() -> None:
    assert pct_ci(0.9565, (0.892, 0.983)) == "95.65% [89.2, 98.3]"
    assert pct_ci(None, (0.1, 0.2)) == "n/a"
    assert pct_ci(0.5, None) == "50.00%"
    assert num_ci(0.912, (0.8711, 0.95)) == "0.912 [0.871, 0.950]"
    assert interval((-0.0209, 0.0776), percent=False, digits=2) == "[-0.02, 0.08]"
    assert interval(None) == ""


def test_table_escapes_pipes_and_newlines() -> None:
    assert table(("a", "b"), [("x|y", "1\n2")]).splitlines()[2] == "| x\\|y | 1 2 |"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("source /home/alice/data/wine.csv ok", "source wine.csv ok"),
        ("`/tmp/edgekit-export-x1/scratch/m.onnx`", "`m.onnx`"),
        ("run dir /srv/runs/iris/ done", "run dir iris done"),
        (r"C:\Users\bob\wine.csv", "wine.csv"),
        ("see https://example.org/a/b.html", "see https://example.org/a/b.html"),
        ("n/a and 3 / 86 and charts/roc.png", "n/a and 3 / 86 and charts/roc.png"),
        ("a root file /data.csv stays", "a root file /data.csv stays"),
    ],
)
def test_strip_paths(text: str, expected: str) -> None:
    assert strip_paths(text) == expected


def test_scrub_walks_json_values() -> None:
    doc = {"a": ["/home/x/y.csv", 3, {"b": "/opt/z/w.npz"}], "n": None}
    assert scrub(doc) == {"a": ["y.csv", 3, {"b": "w.npz"}], "n": None}
