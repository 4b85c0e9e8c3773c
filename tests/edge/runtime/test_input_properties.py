"""Property-based tests of the agent's input parsing: whatever an ``infer/req`` payload
holds, InferRequest.parse raises only ContractError and ``prepare`` only InputError (the
agent answers both with an error reply), and what ``prepare`` accepts is a finite float32
batch of the model's shape."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge import contract as c
from edge.errors import ContractError, InputError
from edge.runtime import ImageBytes, Preparer, RangeGuard, prepare
from tests.edge.runtime.test_guard import ranges
from tests.edge.runtime.test_inputs import IMG, RAW, TAB

numbers = (
    st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
)
scalars = st.none() | numbers | st.text(max_size=12)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=70) | st.dictionaries(st.text(max_size=4), inner, max_size=5)
    ),
    max_leaves=80,
)
# near-misses: rectangular number arrays of about the right sizes, named-feature rows
arrays = hnp.arrays(
    dtype=st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_]),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=9),
    elements={"allow_nan": True, "allow_infinity": True},
)
nested = arrays.map(lambda a: a.tolist())
rows = st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), scalars, max_size=4)
inputs = json_values | nested | arrays | rows | st.lists(rows, max_size=3)
TRUNCATED_PNG = ImageBytes(b"\x89PNG\r\n\x1a\n" + b"x" * 40)
images = st.binary(max_size=64).map(ImageBytes) | st.just(TRUNCATED_PNG)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "inputs", "label", "schema", "x"]), scalars | nested))
def test_infer_request_parse_raises_only_contract_error(obj: dict[str, Any]) -> None:
    try:
        req = c.InferRequest.parse(obj)
    except ContractError:
        return
    # an id comes back with its JSON type: a non-empty string or an integer (not a bool)
    assert (isinstance(req.id, str) and req.id) or (
        isinstance(req.id, int) and not isinstance(req.id, bool)
    )


def check_prepare(manifest: Any, raw: Any) -> None:
    shape = tuple(manifest.inputs[0].shape[1:])
    for fn in (lambda r: prepare(manifest, r), Preparer(manifest)):
        try:
            x = fn(raw)
        except InputError as exc:
            assert exc.code in ("shape", "dtype", "nan", "range", "missing_field",
                                "extra_field", "decode")  # fmt: skip
            continue
        assert x.dtype == np.float32 and x.shape[1:] == shape and x.shape[0] >= 1
        assert np.isfinite(x).all()


@settings(max_examples=400, deadline=None)
@given(inputs | images)
def test_prepare_raises_only_input_error(raw: Any) -> None:
    for manifest in (IMG, TAB, RAW):
        check_prepare(manifest, raw)


NUMPY_DTYPE = re.compile(r"\b(str\d+|<U\d+|float(16|32|64)|u?int(8|16|32|64)|bool_|complex\d+)\b")


@settings(max_examples=300, deadline=None)
@given(inputs)
def test_rejections_never_name_a_numpy_dtype(raw: Any) -> None:
    for manifest in (IMG, TAB, RAW):
        try:
            prepare(manifest, raw)
        except InputError as exc:
            assert not NUMPY_DTYPE.search(str(exc)), str(exc)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=70)
)
def test_a_row_for_an_image_model_is_taken_only_at_exactly_one_sample(values: list[float]) -> None:
    """Never reinterpreted: ``[[v0, ..., vn]]`` fits only when n + 1 is the sample size."""
    for raw in ([values], values):
        try:
            x = prepare(IMG, raw)
        except InputError as exc:
            assert exc.code in ("shape", "range") and (len(values) != 64 or exc.code == "range")
            continue
        assert len(values) == 64 and x.shape == (1, 8, 8, 1)


@settings(max_examples=300, deadline=None)
@given(inputs)
def test_the_refusing_guard_raises_only_range_errors(raw: Any) -> None:
    guard = RangeGuard(ranges(), "refuse")
    try:
        x = prepare(TAB, raw)
    except InputError:
        return
    try:
        guard.enforce(x)
    except InputError as exc:
        assert exc.code == "range" and "training range" in str(exc)
