"""The sample wire format: strict parsing with clear errors, a lossless round trip, and a
JSON Schema that accepts and refuses the same documents."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from edge import contract as c
from edge.errors import ContractError
from tests.edge.capture.samples_kit import batch_dict, npy_bytes, sample_dict
from tests.edge.contract.test_schemas import assert_invalid, assert_valid


@pytest.mark.parametrize("kind", ["image", "tabular", "array"])
def test_round_trip_and_schema(kind: str) -> None:
    obj = sample_dict(kind)
    s = c.Sample.from_dict(obj)
    assert s.to_dict() == obj
    assert s.input.kind == kind and s.input.extension == {"image": "png", "array": "npy",
                                                          "tabular": "json"}[kind]  # fmt: skip
    doc = batch_dict([obj])
    assert c.SampleBatch.decode(c.encode_json(doc)).samples == (s,)
    assert_valid("samples", doc)


def test_shadow_and_missing_optionals() -> None:
    obj = sample_dict(reason="shadow_disagreement", shadow={"version": 3, "label": "1"},
                      known_label=None, prediction={"label": "7"})  # fmt: skip
    s = c.Sample.from_dict(obj)
    assert (s.shadow_version, s.shadow_label, s.known_label, s.scores) == (3, "1", None, None)
    assert s.confidence is None
    assert_valid("samples", batch_dict([s.to_dict()]))


BAD: list[tuple[dict[str, Any], str]] = [
    ({"id": "XYZ"}, "32 lower-case hexadecimal"),
    ({"reason": "because"}, "reason 'because' is not one of"),
    ({"captured_at": float("inf")}, "finite"),
    ({"captured_at": -5}, "unix time"),
    ({"model": {"name": "digits", "version": 0}}, "version must be >= 1"),
    ({"model": {"name": "digits"}}, "missing required field 'version'"),
    ({"prediction": {"label": 7}}, "wrong type int"),
    ({"prediction": {"label": "7", "index": 5, "scores": [0.5, 0.5]}}, "index 5 is out of range"),
    ({"prediction": {"label": "7", "scores": [0.5, "x"]}}, "must be a number"),
    ({"known_label": ""}, "1-256 characters"),
    ({"input": {"kind": "video"}}, "kind must be one of image, tabular, array"),
    ({"input": {"kind": "image", "media_type": "image/jpeg", "data": "AAAA"}}, "image/png"),
    ({"input": {"kind": "image", "media_type": "image/png", "data": "not base64!"}}, "base64"),
    (
        {
            "input": {
                "kind": "image",
                "media_type": "image/png",
                "data": base64.b64encode(b"GIF89a....").decode(),
            }
        },
        "not a PNG",
    ),
    ({"input": {"kind": "tabular", "features": {}}}, "1-4096 entries"),
    ({"input": {"kind": "tabular", "features": {"a": "x"}}}, "must be a number"),
    (
        {
            "input": {
                "kind": "array",
                "dtype": "object",
                "shape": [1],
                "data": base64.b64encode(npy_bytes()).decode(),
            }
        },
        "dtype 'object'",
    ),
    (
        {
            "input": {
                "kind": "array",
                "dtype": "float32",
                "shape": [-1],
                "data": base64.b64encode(npy_bytes()).decode(),
            }
        },
        "non-negative",
    ),
    (
        {
            "input": {
                "kind": "array",
                "dtype": "float32",
                "shape": [8],
                "data": base64.b64encode(b"plain bytes").decode(),
            }
        },
        "not a .npy",
    ),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_samples_are_refused_with_a_clear_message(change: dict[str, Any], message: str) -> None:
    obj = sample_dict(**change)
    with pytest.raises(ContractError, match=message.replace("(", r"\(")):
        c.Sample.from_dict(obj)


def test_schema_refuses_what_the_parser_refuses() -> None:
    parser_only = ("base64", "not a PNG", "not a .npy", "finite", "out of range")
    for change, message in BAD:
        if any(word in message for word in parser_only):
            continue  # file contents, NaN (not JSON) and index < len(scores): the parser's
        assert_invalid("samples", batch_dict([sample_dict(**change)]))


def test_oversized_input_is_refused() -> None:
    big = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(c.MAX_SAMPLE_BYTES)).decode()
    with pytest.raises(ContractError, match="exceeds the 2097152 byte sample limit"):
        c.Sample.from_dict(sample_dict(input={"kind": "image", "media_type": "image/png",
                                              "data": big}))  # fmt: skip


def test_batch_envelope_and_lenient_parsing() -> None:
    good, bad = sample_dict(), sample_dict(reason="nope")
    batch, rejected = c.SampleBatch.parse_lenient(batch_dict([good, bad, good]))
    assert [s.id for s in batch.samples] == [good["id"]]
    assert [r["id"] for r in rejected] == [bad["id"], good["id"]]
    assert "appears twice" in rejected[1]["error"]
    with pytest.raises(ContractError, match="reason 'nope'"):
        c.SampleBatch.from_dict(batch_dict([good, bad]))
    with pytest.raises(ContractError, match="exceed the batch limit 64"):
        c.SampleBatch.from_dict(batch_dict([sample_dict() for _ in range(c.MAX_BATCH + 1)]))
    with pytest.raises(ContractError, match="schema"):
        c.SampleBatch.from_dict({**batch_dict([good]), "schema": "edgekit.samples/2"})
    with pytest.raises(ContractError, match="device"):
        c.SampleBatch.from_dict(batch_dict([good], device="a/b"))
    with pytest.raises(ContractError, match="exceeds the 8388608 byte limit"):
        c.SampleBatch.decode(b" " * (c.MAX_BATCH_BYTES + 1))
    assert_invalid("samples", batch_dict([sample_dict() for _ in range(c.MAX_BATCH + 1)]))


def test_upload_receipt() -> None:
    r = c.UploadReceipt(accepted=("a",), duplicates=("b",), rejected=(("c", "bad"),))
    assert c.UploadReceipt.from_dict(r.to_dict()) == r
    with pytest.raises(ContractError, match="rejected"):
        c.UploadReceipt.from_dict({"rejected": ["c"]})
    with pytest.raises(ContractError, match="accepted"):
        c.UploadReceipt.from_dict({"accepted": [1]})


@pytest.mark.integration
def test_ajv_agrees(tmp_path: Any) -> None:
    """ajv 8 in Node (what Node-RED and most JS consumers use) compiles the schema and
    agrees on a valid and an invalid upload."""
    import json

    from tests.edge.integration.test_agent_ha_and_will import run_ajv

    cases = tmp_path / "cases.json"
    valid = batch_dict([sample_dict(kind) for kind in ("image", "tabular", "array")])
    invalid = batch_dict([sample_dict(reason="x")])
    cases.write_text(json.dumps({"valid": {"samples": [valid]}, "invalid": {"samples": [invalid]}}))
    report = run_ajv(cases)
    assert "samples" in report["compiled"] and report["checked"] == 2
