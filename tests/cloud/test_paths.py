"""Build-machine paths become file names; URLs, ratios and relative names survive."""

from __future__ import annotations

import pytest

from cloud.paths import file_name, scrub, strip_paths


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("source /home/alice/data/wine.csv ok", "source wine.csv ok"),
        ("`/tmp/edgekit-export-x1/scratch/m.onnx`", "`m.onnx`"),
        ("(/work/main/runs/x)", "(x)"),
        ("from ~/data/wine.csv and ~bob/d/x.npz", "from wine.csv and x.npz"),
        ("see file:///srv/data/wine.csv.", "see wine.csv."),
        (r"C:\Users\bob\wine.csv", "wine.csv"),
        ("see https://example.org/a/b.html", "see https://example.org/a/b.html"),
        ("n/a and 3 / 86 and charts/roc.png", "n/a and 3 / 86 and charts/roc.png"),
        ("approx ~3 ms, ~/", "approx ~3 ms, ~"),
        ("", ""),
    ],
)
def test_strip_paths(text: str, expected: str) -> None:
    assert strip_paths(text) == expected


def test_scrub_walks_json_values_and_keeps_other_types() -> None:
    doc = {"a": ("/home/x/y.csv", 3, {"b": "/opt/z/w.npz"}), "n": None, "f": 0.5}
    assert scrub(doc) == {"a": ["y.csv", 3, {"b": "w.npz"}], "n": None, "f": 0.5}


@pytest.mark.parametrize(
    ("path", "name"),
    [("/srv/runs/digits", "digits"), ("/srv/runs/digits/", "digits"), (r"C:\runs\iris", "iris"),
     ("digits", "digits"), ("/", "/")],
)  # fmt: skip
def test_file_name(path: str, name: str) -> None:
    assert file_name(path) == name
