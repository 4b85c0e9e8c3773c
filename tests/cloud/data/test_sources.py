from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cloud.data.sources import load_dataset
from edge.errors import DataError


def test_digits_is_an_8x8_grayscale_image_set() -> None:
    ds = load_dataset("digits")
    assert ds.kind == "image"
    assert ds.x.shape == (1797, 8, 8, 1)
    assert ds.raw_range == (0.0, 16.0)
    assert ds.labels == [str(i) for i in range(10)]
    assert ds.x.min() == 0 and ds.x.max() == 16


def test_csv_with_string_labels_keeps_names_and_feature_order(
    write_csv: Callable[..., Path],
) -> None:
    path = write_csv("b,label,a\n1,cat,2\n3,dog,4\n5.5,cat,6\n")
    ds = load_dataset(str(path))
    assert ds.kind == "tabular"
    assert ds.feature_names == ["b", "a"]
    assert ds.labels == ["cat", "dog"]
    assert ds.y.tolist() == [0, 1, 0]
    np.testing.assert_allclose(ds.x, [[1.0, 2.0], [3.0, 4.0], [5.5, 6.0]])


def test_csv_integer_labels_sort_numerically(write_csv: Callable[..., Path]) -> None:
    ds = load_dataset(str(write_csv("x,label\n1,10\n2,2\n3,2.0\n")))
    assert ds.labels == ["2", "10"]
    assert ds.y.tolist() == [1, 0, 0]


def test_csv_custom_label_column_and_semicolons(write_csv: Callable[..., Path]) -> None:
    ds = load_dataset(str(write_csv("f1;kind\n1;a\n2;b\n")), label_column="kind")
    assert ds.feature_names == ["f1"] and ds.labels == ["a", "b"]


def test_csv_missing_label_column_names_the_columns(write_csv: Callable[..., Path]) -> None:
    with pytest.raises(DataError, match=r"no label column 'label'.*'a', 'b', 'kind'"):
        load_dataset(str(write_csv("a,b,kind\n1,2,x\n")))


def test_csv_non_numeric_feature_is_named(write_csv: Callable[..., Path]) -> None:
    with pytest.raises(DataError, match=r"non-numeric feature columns: colour \(line 3: 'red'\)"):
        load_dataset(str(write_csv("size,colour,label\n1,2,a\n2,red,b\n")))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("a,label\n", "no data rows"),
        ("a,b,label\n1,2\n", "line 2 has 2 fields"),
        ("a,a,label\n1,2,x\n", "duplicate column names 'a'"),
        ("label\nx\ny\n", "no feature columns"),
        ("a,label\n1,\n2,y\n", "empty label"),
    ],
)
def test_csv_malformed_files_are_refused(
    write_csv: Callable[..., Path], text: str, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        load_dataset(str(write_csv(text)))


def test_csv_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "bin.csv"
    path.write_bytes(b"a,label\n\xff\xfe,1\n")
    with pytest.raises(DataError, match="not a UTF-8"):
        load_dataset(str(path))


def test_npz_tabular_and_images(tmp_path: Path) -> None:
    np.savez(tmp_path / "t.npz", x=np.ones((4, 3)), y=np.array([0, 1, 0, 1]))
    tab = load_dataset(str(tmp_path / "t.npz"))
    assert tab.kind == "tabular" and tab.feature_names == ["f0", "f1", "f2"]

    np.savez(tmp_path / "g.npz", x=np.zeros((4, 5, 6), np.uint8), y=np.array(["a", "b"] * 2))
    gray = load_dataset(str(tmp_path / "g.npz"))
    assert gray.x.shape == (4, 5, 6, 1) and gray.raw_range == (0.0, 255.0)
    assert gray.color == "grayscale" and gray.labels == ["a", "b"]

    x = np.linspace(-1, 1, 4 * 2 * 2 * 3).reshape(4, 2, 2, 3)
    np.savez(tmp_path / "c.npz", x=x, y=np.array([1, 2, 1, 2]))
    rgb = load_dataset(str(tmp_path / "c.npz"))
    assert rgb.color == "rgb" and rgb.raw_range == (-1.0, 1.0)


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"x": np.ones((3, 2))}, r"needs arrays 'x' and 'y'; arrays present: \['x'\]"),
        ({"x": np.ones((3, 2)), "y": np.arange(2)}, "'x' has 3 samples but 'y' has 2"),
        ({"x": np.ones((2, 2, 2, 2)), "y": np.arange(2)}, "got shape"),
        ({"x": np.array([["a"], ["b"]]), "y": np.arange(2)}, "must be numeric"),
        ({"x": np.ones((2, 1)), "y": np.array([0.5, 1.0])}, "non-integral"),
        ({"x": np.ones((2, 1)), "y": np.array([object(), 1], dtype=object)}, "without pickle"),
    ],
)
def test_npz_bad_arrays_are_refused(tmp_path: Path, arrays: dict, message: str) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset(str(path))


def test_npz_garbage_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.npz"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(DataError, match=r"not a readable \.npz"):
        load_dataset(str(path))


def test_unknown_dataset_and_file_type(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_dataset(str(tmp_path / "missing.csv"))
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(DataError, match=r"unsupported file type '\.txt'"):
        load_dataset(str(tmp_path / "d.txt"))


def test_image_folder_rgb_resized_and_labelled(image_folder: Callable[..., Path]) -> None:
    ds = load_dataset(str(image_folder(per_class=4)), image_size=16)
    assert ds.x.shape == (8, 16, 16, 3)
    assert ds.labels == ["cat", "dog"] and ds.y.tolist() == [0] * 4 + [1] * 4
    assert ds.color == "rgb" and ds.raw_range == (0.0, 255.0)
    assert ds.skipped == []


def test_image_folder_grayscale_gets_one_channel(image_folder: Callable[..., Path]) -> None:
    ds = load_dataset(str(image_folder(mode="L")), image_size=8)
    assert ds.x.shape == (10, 8, 8, 1) and ds.color == "grayscale"


def test_image_folder_skips_and_counts_unreadable(image_folder: Callable[..., Path]) -> None:
    root = image_folder(per_class=10)
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG garbage")
    (root / "notes.txt").write_text("ignored: not in a class folder")
    (root / "dog" / "readme.md").write_text("ignored: not an image suffix")
    ds = load_dataset(str(root), image_size=8)
    assert len(ds.x) == 20
    assert ds.skipped == ["cat/broken.png"]


def test_image_folder_refuses_too_many_unreadable(image_folder: Callable[..., Path]) -> None:
    root = image_folder(per_class=3)
    for i in range(2):
        (root / "dog" / f"bad{i}.jpg").write_bytes(b"nope")
    with pytest.raises(DataError, match=r"2 of 8 images unreadable \(25%, limit 10%\)"):
        load_dataset(str(root))
    assert len(load_dataset(str(root), max_bad_fraction=0.5).x) == 6


def test_image_folder_without_classes_or_images(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class sub-folders"):
        load_dataset(str(tmp_path / "empty"))
    (tmp_path / "empty" / "a").mkdir()
    (tmp_path / "empty" / "a" / "x.txt").write_text("")
    with pytest.raises(DataError, match="no PNG or JPEG"):
        load_dataset(str(tmp_path / "empty"))
