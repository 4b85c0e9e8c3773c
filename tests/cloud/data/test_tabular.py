"""CSV column roles: --group-column and --exclude-columns keep columns out of the features."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from cloud.data.groups import MISSING_GROUP
from cloud.data.sources import load_dataset
from cloud.data.tabular import load_csv
from edge.errors import DataError

CSV = (
    "id,a,site,note,b,label\n"
    "r1,1,north,hello,10,x\n"
    "r2,2,south,,20,y\n"
    "r3,3,,bye,30,x\n"
    "r4,4,north,x,40,y\n"
)


def test_group_and_excluded_columns_are_not_features(write_csv: Callable[..., Path]) -> None:
    ds = load_csv(write_csv(CSV), group_column="site", exclude_columns=["id", "note"])
    assert ds.feature_names == ["a", "b"]
    np.testing.assert_allclose(ds.x, [[1, 10], [2, 20], [3, 30], [4, 40]])
    assert ds.groups is not None
    assert ds.groups.tolist() == ["north", "south", MISSING_GROUP, "north"]
    assert ds.group_column == "site"
    assert ds.excluded_columns == ["id", "note"]


def test_text_columns_load_once_excluded(write_csv: Callable[..., Path]) -> None:
    path = write_csv(CSV)
    with pytest.raises(DataError, match="non-numeric feature columns: id"):
        load_csv(path, group_column="site")
    ds = load_dataset(str(path), exclude_columns=["id", "note", "site"])
    assert ds.feature_names == ["a", "b"] and ds.groups is None


def test_naming_the_group_column_in_exclude_too_is_harmless(
    write_csv: Callable[..., Path],
) -> None:
    ds = load_csv(write_csv(CSV), group_column="site", exclude_columns=["id", "note", "site"])
    assert ds.feature_names == ["a", "b"] and ds.excluded_columns == ["id", "note"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"exclude_columns": ["nope", "id"]},
            "--exclude-columns names unknown column(s) 'nope'; columns present: 'id', 'a', "
            "'site', 'note', 'b', 'label'",
        ),
        ({"exclude_columns": ["label"]}, "the label column 'label' cannot be excluded"),
        ({"exclude_columns": [" "]}, "--exclude-columns has an empty column name"),
        ({"group_column": "region"}, "no group column 'region'; columns present: 'id'"),
        ({"group_column": "label"}, "the group column cannot be the label column 'label'"),
        (
            {"group_column": "id", "exclude_columns": ["note", "site"]},
            "group column 'id' has a different value in every one of the 4 rows",
        ),
        (
            {"exclude_columns": ["id", "a", "b", "note"], "group_column": "site"},
            "no feature columns besides the label column 'label' and the group/excluded",
        ),
    ],
)
def test_bad_column_options_name_the_problem(
    write_csv: Callable[..., Path], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(DataError, match=re.escape(message)):
        load_csv(write_csv(CSV), **kwargs)  # type: ignore[arg-type]


def test_image_datasets_refuse_column_options(
    image_folder: Callable[..., Path],
) -> None:
    with pytest.raises(DataError, match="--group-column needs named columns"):
        load_dataset("digits", group_column="site")
    with pytest.raises(DataError, match="--exclude-columns needs named columns"):
        load_dataset(str(image_folder()), exclude_columns=["a"])


def _npz(tmp_path: Path, **arrays: np.ndarray) -> Path:
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    return path


def test_npz_groups_array_and_excluded_features(tmp_path: Path) -> None:
    x = np.arange(24, dtype=np.float32).reshape(8, 3)
    y = np.array([0, 1] * 4)
    path = _npz(tmp_path, x=x, y=y, groups=np.array(["a", "b", "a", "b", "a", "b", "c", "c"]))
    ds = load_dataset(str(path), group_column="groups", exclude_columns=["f1"])
    assert ds.feature_names == ["f0", "f2"]
    np.testing.assert_array_equal(ds.x, x[:, [0, 2]])
    assert ds.groups is not None and ds.groups.tolist()[-1] == "c"
    assert ds.excluded_columns == ["f1"]


@pytest.mark.parametrize(
    ("arrays", "kwargs", "message"),
    [
        ({}, {"group_column": "site"}, "no group array 'site'; arrays present:"),
        ({}, {"group_column": "y"}, "the group array cannot be 'y'"),
        ({"g": np.array(["a", "b"])}, {"group_column": "g"}, "one value per sample (8)"),
        (
            {},
            {"exclude_columns": ["f9"]},
            "unknown feature(s) ['f9']; the .npz features are f0..f2",
        ),
        ({}, {"exclude_columns": ["f0", "f1", "f2"]}, "leaves no feature"),
    ],
)
def test_npz_bad_column_options(
    tmp_path: Path, arrays: dict[str, np.ndarray], kwargs: dict[str, object], message: str
) -> None:
    x = np.zeros((8, 3), dtype=np.float32)
    path = _npz(tmp_path, x=x, y=np.array([0, 1] * 4), **arrays)
    with pytest.raises(DataError, match=re.escape(message)):
        load_dataset(str(path), **kwargs)  # type: ignore[arg-type]


def test_npz_images_refuse_excluded_features(tmp_path: Path) -> None:
    path = _npz(tmp_path, x=np.zeros((4, 8, 8), dtype=np.uint8), y=np.array([0, 1, 0, 1]))
    with pytest.raises(DataError, match="--exclude-columns needs tabular data"):
        load_dataset(str(path), exclude_columns=["f0"])
