"""Input validation: every rejection code, every documented coercion."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from edge.contract import Artifact, Manifest, TensorSpec
from edge.errors import InputError
from edge.runtime import ImageBytes, Preparer, load_input_file, prepare
from tests.digits import DIGITS_PREPROCESSING

IMAGE_PRE = DIGITS_PREPROCESSING
TAB_PRE = {"kind": "tabular", "features": ["a", "b", "c"], "mean": [1, 2, 3], "std": [1, 2, 0]}


def manifest(pre: dict[str, Any], shape: list[int]) -> Manifest:
    art = Artifact("models/litert-fp32.tflite", "litert", "fp32", "0" * 64, 1, {})
    return Manifest(
        name="m",
        version=1,
        created="2026-01-01T00:00:00Z",
        labels=["x", "y"],
        inputs=[TensorSpec("input", shape, "float32")],
        outputs=[TensorSpec("scores", [1, 2], "float32")],
        preprocessing=pre,
        artifacts=[art],
        golden=None,
        reference=None,
        lineage={},
    )


IMG = manifest(IMAGE_PRE, [1, 8, 8, 1])
TAB = manifest(TAB_PRE, [1, 3])
RAW = manifest({"kind": "none"}, [1, 2, 2])


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


# ----------------------------------------------------------------- coercions


def test_image_sample_gets_batch_dim_and_formula() -> None:
    x = prepare(IMG, np.full((8, 8, 1), 16.0))
    assert x.shape == (1, 8, 8, 1) and x.dtype == np.float32
    assert np.allclose(x, 1.0)


def test_float64_becomes_float32_and_batch_kept() -> None:
    x = prepare(IMG, np.full((3, 8, 8, 1), 8.0, dtype=np.float64))
    assert x.dtype == np.float32 and x.shape == (3, 8, 8, 1) and np.allclose(x, 0.5)


def test_flat_list_reshaped() -> None:
    x = prepare(IMG, list(range(16)) * 4)
    assert x.shape == (1, 8, 8, 1)
    assert x[0, 0, 1, 0] == pytest.approx(1 / 16)


def test_flat_batch_reshaped_and_grayscale_channel_added() -> None:
    assert prepare(IMG, np.zeros((2, 64))).shape == (2, 8, 8, 1)
    assert prepare(IMG, np.zeros((8, 8))).shape == (1, 8, 8, 1)
    assert prepare(IMG, np.zeros((5, 8, 8))).shape == (5, 8, 8, 1)


def test_image_array_resized() -> None:
    x = prepare(IMG, np.full((32, 32), 16.0))
    assert x.shape == (1, 8, 8, 1) and np.allclose(x, 1.0, atol=1e-5)


def test_image_file_decoded_resized_and_mapped(tmp_path: Path) -> None:
    arr = np.zeros((24, 24), dtype=np.uint8)
    arr[:, 12:] = 255
    path = tmp_path / "d.png"
    path.write_bytes(png(arr))
    raw = load_input_file(path)
    assert isinstance(raw, ImageBytes)
    x = prepare(IMG, raw)
    assert x.shape == (1, 8, 8, 1)
    assert x[0, 0, 0, 0] == pytest.approx(0.0) and x[0, 0, 7, 0] == pytest.approx(1.0)
    inv = prepare(manifest({**IMAGE_PRE, "invert": True}, [1, 8, 8, 1]), raw)
    assert inv[0, 0, 0, 0] == pytest.approx(1.0) and inv[0, 0, 7, 0] == pytest.approx(0.0)


def test_rgb_image_file_to_grayscale_model(tmp_path: Path) -> None:
    rgb = np.full((10, 10, 3), 255, dtype=np.uint8)
    x = prepare(IMG, ImageBytes(png(rgb), "rgb.png"))
    assert np.allclose(x, 1.0)


def test_named_features_reordered_and_standardised() -> None:
    x = prepare(TAB, {"c": 3.0, "a": 2.0, "b": 6.0})
    # (x - mean) / std with std 0 treated as 1
    assert x.tolist() == [[1.0, 2.0, 0.0]]
    batch = prepare(TAB, [{"a": 1, "b": 2, "c": 3}, {"a": 2, "b": 4, "c": 4}])
    assert batch.shape == (2, 3)
    assert prepare(TAB, [1, 2, 3]).tolist() == [[0.0, 0.0, 0.0]]


def test_no_preprocessing_passes_model_domain_values() -> None:
    x = prepare(RAW, [[1, 2], [3, 4]])
    assert x.shape == (1, 2, 2) and x.dtype == np.float32


def test_dynamic_dims_accept_any_length() -> None:
    dyn = manifest({"kind": "none"}, [-1, -1])
    assert prepare(dyn, [1.0, 2.0, 3.0]).shape == (1, 3)


# ----------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("m", "raw", "code"),
    [
        (IMG, np.zeros((8, 8, 3)), "shape"),
        (IMG, [0] * 63, "shape"),
        (IMG, np.zeros((3, 5, 5)), "shape"),
        (IMG, [[1, 2], [3]], "shape"),
        (TAB, [1, 2], "shape"),
        (TAB, [1, 2, 3, 4], "shape"),
        (TAB, np.zeros((0, 3)), "shape"),
        (IMG, np.full((8, 8), "a"), "dtype"),
        (TAB, [True, False, True], "dtype"),
        (TAB, {"a": "1", "b": 2, "c": 3}, "dtype"),
        (TAB, [1.0, float("nan"), 2.0], "nan"),
        (TAB, [1.0, float("inf"), 2.0], "nan"),
        (IMG, np.full((8, 8), 17.0), "range"),
        (IMG, np.full((8, 8), -1.0), "range"),
        (TAB, [1e39, 0, 0], "range"),
        (TAB, {"a": 1, "b": 2}, "missing_field"),
        (TAB, {"a": 1, "b": 2, "c": 3, "d": 4}, "extra_field"),
        (IMG, ImageBytes(b"not an image", "x.png"), "decode"),
        (TAB, ImageBytes(b"\x89PNG", "x.png"), "decode"),
        (RAW, b"bytes", "decode"),
    ],
)
def test_rejections_have_codes(m: Manifest, raw: Any, code: str) -> None:
    for prep in (lambda r: prepare(m, r), Preparer(m)):  # serving's bound fast path too
        with pytest.raises(InputError) as info:
            prep(raw)
        assert info.value.code == code, str(info.value)
        assert str(info.value)


def test_named_input_without_feature_names_is_refused() -> None:
    m = manifest({"kind": "tabular", "features": [], "mean": [0], "std": [1]}, [1, 1])
    with pytest.raises(InputError) as info:
        prepare(m, {"a": 1})
    assert info.value.code == "extra_field"


# ----------------------------------------------------------------- files


def test_input_files(tmp_path: Path) -> None:
    npy = tmp_path / "x.npy"
    np.save(npy, np.ones((8, 8)))
    assert prepare(IMG, load_input_file(npy)).shape == (1, 8, 8, 1)
    js = tmp_path / "x.json"
    js.write_text(json.dumps({"a": 1, "b": 2, "c": 3}))
    assert prepare(TAB, load_input_file(js)).shape == (1, 3)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", b"{oops", "not valid JSON"),
        ("bad.npy", b"garbage", "not a readable .npy"),
        ("obj.npy", None, "not a readable .npy"),
        ("x.bin", b"\x00\x01", "unknown input type"),
        ("missing.json", "absent", "does not exist"),
    ],
)
def test_bad_input_files(tmp_path: Path, name: str, content: Any, message: str) -> None:
    path = tmp_path / name
    if content is None:
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        load_input_file(path)
    assert info.value.code == "decode"


# ----------------------------------------------------------------- image fast path


@pytest.mark.parametrize(
    ("pre", "values", "code"),
    [
        (IMAGE_PRE, [0.0, 16.0], None),  # the range ends themselves
        (IMAGE_PRE, [16.0 + 0.5 * 16e-4], None),  # inside the documented slack
        (IMAGE_PRE, [16.0 + 2 * 16e-4], "range"),  # just past it
        (IMAGE_PRE, [-2 * 16e-4], "range"),
        (IMAGE_PRE, [np.nan, 20.0], "range"),  # a range error is reported before NaN
        (IMAGE_PRE, [np.nan, 1.0], "nan"),
        (IMAGE_PRE, [np.inf], "nan"),
        ({**IMAGE_PRE, "scale": 1.0, "offset": 1e6}, [0.0, 16.0], None),  # exact path
        ({**IMAGE_PRE, "scale": -1 / 16, "offset": 1.0}, [0.0, 16.0], None),
        ({**IMAGE_PRE, "scale": -1 / 16, "offset": 1.0}, [17.0], "range"),
        ({**IMAGE_PRE, "scale": 0.0}, [17.0], "range"),
        ({**IMAGE_PRE, "scale": 1e38}, [16.0], "range"),  # overflows float32 after it
    ],
)
@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_image_checks_agree_at_the_edges(
    pre: dict[str, Any], values: list[float], code: str | None
) -> None:
    m = manifest(pre, [1, 8, 8, 1])
    raw = np.full((8, 8, 1), values[0], dtype=np.float32)
    raw.flat[: len(values)] = values
    # the generic path, and serving's bound fast path with and without the batch axis
    for prep, arg in ((lambda r: prepare(m, r), raw), (Preparer(m), raw), (Preparer(m), raw[None])):
        if code is None:
            x = prep(arg)
            want = raw.astype(np.float32) * np.float32(pre["scale"]) + np.float32(pre["offset"])
            assert x.shape == (1, 8, 8, 1) and x.flags.c_contiguous
            assert np.array_equal(x[0], want.astype(np.float32))
            assert not np.may_share_memory(x, raw)
        else:
            with pytest.raises(InputError) as info:
                prep(arg)
            assert info.value.code == code, str(info.value)


def test_uint8_frames_and_strided_views_are_prepared() -> None:
    frame = np.arange(64, dtype=np.uint8).reshape(8, 8) % 17
    assert np.allclose(prepare(IMG, frame)[0, :, :, 0], frame / 16)
    fast = Preparer(IMG)(frame[:, :, None])  # a camera frame takes the fast path
    assert fast.dtype == np.float32 and np.allclose(fast[0, :, :, 0], frame / 16)
    with pytest.raises(InputError) as info:  # uint8 is no proof of range: 0..16 here
        Preparer(IMG)(frame[:, :, None] + 1)
    assert info.value.code == "range"
    wide = np.zeros((8, 16), dtype=np.float32)
    wide[:, ::2] = 16.0
    x = prepare(IMG, wide[:, ::2])  # a non-contiguous view
    assert x.flags.c_contiguous and np.allclose(x, 1.0)


# ----------------------------------------------------------------- numpy scalars, messages


def test_numpy_scalars_are_numbers_in_rows_and_lists() -> None:
    row = {"a": np.float32(2.0), "b": np.int64(6), "c": np.float64(3.0)}
    assert prepare(TAB, row).tolist() == [[1.0, 2.0, 0.0]]
    assert prepare(TAB, [row, {"a": np.uint8(1), "b": 2, "c": np.float16(3)}]).shape == (2, 3)
    assert prepare(TAB, [np.float32(1), np.int32(2), 3.0]).tolist() == [[0.0, 0.0, 0.0]]
    with pytest.raises(InputError, match="feature 'a' must be a number, got true/false"):
        prepare(TAB, {"a": np.bool_(True), "b": 2, "c": 3})


@pytest.mark.parametrize(
    ("m", "raw", "message"),
    [
        (TAB, {"a": "1", "b": 2, "c": 3}, "feature 'a' must be a number, got a string"),
        (TAB, {"a": None, "b": 2, "c": 3}, "feature 'a' must be a number, got null"),
        (TAB, {"a": [1], "b": 2, "c": 3}, "feature 'a' must be a number, got a list"),
        (TAB, {"a": 1, "b": {"x": 1}, "c": 3}, "feature 'b' must be a number, got an object"),
        (TAB, [1.0, "x" * 500, 3.0], "value [1] is a string"),
        (IMG, [[0] * 8] * 7 + [[0] * 7 + ["a"]], "value [7][7] is a string"),
        (TAB, np.array(["a", "b", "c"]), "got strings"),
        (TAB, [True, False, True], "value [0] is true/false"),
        (TAB, np.array([1 + 2j, 0, 0]), "got complex numbers"),
        (TAB, [1.0, None, 3.0], "value [1] is null"),
        (TAB, [1.0, 2.0, {"x": 1}], "value [2] is an object"),
    ],
)
def test_messages_say_which_field_in_json_terms(m: Manifest, raw: Any, message: str) -> None:
    with pytest.raises(InputError) as info:
        prepare(m, raw)
    assert info.value.code == "dtype" and message in str(info.value)
    assert not re.search(r"\b(str\d+|<U\d+|float\d+|int\d+|bool_?|complex\d+)\b", str(info.value))


# ----------------------------------------------------------------- no reinterpretation


@pytest.mark.parametrize(
    "raw",
    [
        [[1.0] * 60],  # a batch of one row of the wrong length
        [[1.0] * 60] * 2,
        [[1.0] * 63],
        [[1.0] * 65],
        np.ones((1, 8)),  # one row of 8 is not an 1x8 image
        np.ones((2, 60)),  # too stretched to be an image of 8x8 (aspect 30x)
        np.ones((1, 20, 1)),  # a row of pixels with its channel axis
    ],
)
def test_rows_of_the_wrong_length_are_not_taken_for_images(raw: Any) -> None:
    for prep in (lambda r: prepare(IMG, r), Preparer(IMG)):
        with pytest.raises(InputError) as info:
            prep(raw)
        assert info.value.code == "shape"
        assert "[8, 8, 1]" in str(info.value) and "flat list of 64 values" in str(info.value)


def test_real_images_of_other_sizes_are_still_resized() -> None:
    for shape in ((28, 28), (16, 12), (4, 4), (6, 20), (32, 32, 1), (3, 10, 10, 1)):
        x = prepare(IMG, np.full(shape, 16.0))
        assert x.shape[1:] == (8, 8, 1) and np.allclose(x, 1.0, atol=1e-5), shape


def test_named_values_too_large_for_the_model_say_so() -> None:
    for value in (1e39, -(10**50), 10**400):
        with pytest.raises(
            InputError, match=r"feature 'a' = .* is too large for the model"
        ) as info:
            prepare(TAB, {"a": value, "b": 1, "c": 1})
        assert info.value.code == "range"
    with pytest.raises(InputError, match="infinite") as info:
        prepare(TAB, {"a": float("inf"), "b": 1, "c": 1})
    assert info.value.code == "nan"


def test_huge_json_integers_in_lists_are_range_errors() -> None:
    with pytest.raises(InputError, match="too large for the model") as info:
        prepare(TAB, [10**400, 1, 1])
    assert info.value.code == "range"
