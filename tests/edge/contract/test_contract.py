"""The wire contract: topics, payload round trips, strict parsing of what matters."""

from __future__ import annotations

import json

import pytest

from edge import contract as c
from edge.errors import ContractError, ManifestError


def test_topics_round_trip() -> None:
    t = c.topic("cam-1", c.INFER_REQ)
    assert t == "edgekit/v1/cam-1/infer/req"
    assert c.parse_topic(t) == ("cam-1", "infer/req")
    assert c.topic_filter(c.STATUS) == "edgekit/v1/+/status"


@pytest.mark.parametrize("bad", ["", "a/b", "a+b", "#", "x" * 200, "-lead"])
def test_bad_device_ids_refused(bad: str) -> None:
    with pytest.raises(ContractError):
        c.topic(bad, c.STATUS)


def test_parse_topic_refuses_foreign_topics() -> None:
    with pytest.raises(ContractError):
        c.parse_topic("other/v1/a/status")
    with pytest.raises(ContractError):
        c.parse_topic("edgekit/v1/a/nope")


def test_status_round_trip() -> None:
    s = c.Status(
        device="d1",
        ts=1.5,
        seq=3,
        state="online",
        agent_version="0.1.0",
        model=c.ModelRef("digits", 2, "litert", "int8"),
        capabilities={"cores": 2},
    )
    back = c.Status.parse(c.decode_json(c.encode_json(s.to_dict())))
    assert back == s


def test_telemetry_keeps_metrics() -> None:
    t = c.Telemetry(device="d1", ts=1.0, seq=7, model=None, metrics={"inferences": 5})
    d = t.to_dict()
    assert d["schema"] == c.SCHEMA_TELEMETRY and d["inferences"] == 5
    assert c.Telemetry.parse(d).metrics == {"inferences": 5}


def test_wrong_schema_and_missing_fields() -> None:
    with pytest.raises(ContractError, match="schema"):
        c.Status.parse({"schema": "edgekit.telemetry/1", "device": "d", "ts": 1, "seq": 1})
    with pytest.raises(ContractError, match="seq"):
        c.Status.parse({"schema": c.SCHEMA_STATUS, "device": "d", "ts": 1, "state": "online"})
    with pytest.raises(ContractError, match="state"):
        c.Status.parse(
            {"schema": c.SCHEMA_STATUS, "device": "d", "ts": 1, "seq": 1, "state": "meh"}
        )


def test_decode_json_refuses_garbage_and_huge() -> None:
    with pytest.raises(ContractError, match="not JSON"):
        c.decode_json(b"\xff\xfe{")
    with pytest.raises(ContractError, match="object"):
        c.decode_json(b"[1,2]")
    with pytest.raises(ContractError, match="limit"):
        c.decode_json(b" " * (c.MAX_PAYLOAD_BYTES + 1))


def test_command_rules() -> None:
    ok = {
        "schema": c.SCHEMA_CMD,
        "id": "c1",
        "kind": "deploy",
        "ts": 1,
        "expires": 2,
        "url": "http://x/b",
        "sha256": "0" * 64,
        "size": 10,
        "version": 2,
    }
    assert c.Command.parse(ok).version == 2
    with pytest.raises(ContractError, match="deploy needs"):
        c.Command.parse({**ok, "url": None})
    with pytest.raises(ContractError, match="unknown kind"):
        c.Command.parse({**ok, "kind": "format-disk"})


def test_infer_request_needs_id_and_inputs() -> None:
    assert c.InferRequest.parse({"id": 5, "inputs": [1]}).id == 5  # the type is kept
    assert c.InferRequest.parse({"id": "5", "inputs": [1]}).id == "5"
    for bad in ({"inputs": [1]}, {"id": "", "inputs": [1]}, {"id": True, "inputs": 1}, {"id": "x"}):
        with pytest.raises(ContractError):
            c.InferRequest.parse(bad)


def _manifest_dict() -> dict:
    h = "a" * 64
    return {
        "format": c.BUNDLE_FORMAT,
        "name": "digits",
        "version": 1,
        "created": "2026-11-26T00:00:00Z",
        "labels": ["0", "1"],
        "inputs": [{"name": "x", "shape": [1, 8, 8, 1], "dtype": "float32"}],
        "outputs": [{"name": "scores", "shape": [1, 2], "dtype": "float32"}],
        "preprocessing": {"kind": "image"},
        "artifacts": [
            {
                "file": "models/a.tflite",
                "runtime": "litert",
                "precision": "int8",
                "sha256": h,
                "size": 10,
                "metrics": {"accuracy": 0.9},
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, 8, 8, 1],
                        "dtype": "int8",
                        "scale": 0.1,
                        "zero_point": -128,
                    }
                ],
            }
        ],
        "golden": {
            "file": "golden.npz",
            "sha256": h,
            "size": 3,
            "tolerance": {"max_mean_abs_error": 0.05},
        },
        "reference": {"file": "reference.json", "sha256": h, "size": 4},
        "lineage": {"seed": 0},
    }


def test_manifest_round_trip_and_canonical_bytes() -> None:
    m = c.Manifest.parse(_manifest_dict())
    assert m.artifacts[0].inputs[0].zero_point == -128
    again = c.Manifest.parse(json.loads(json.dumps(m.to_dict())))
    assert again == m
    assert again.canonical_bytes() == m.canonical_bytes()
    assert {e.file for e in m.all_entries()} == {"models/a.tflite", "golden.npz", "reference.json"}


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("format", "edgekit.bundle/9", "unsupported"),
        ("version", 0, "version"),
        ("version", "2", "version"),
        ("name", "../x", "name"),
        ("artifacts", [], "artifacts"),
        ("labels", [1, 2], "labels"),
    ],
)
def test_manifest_refuses_bad_fields(key: str, value: object, match: str) -> None:
    d = _manifest_dict()
    d[key] = value
    with pytest.raises(ManifestError, match=match):
        c.Manifest.parse(d)


def test_manifest_refuses_bad_artifact() -> None:
    d = _manifest_dict()
    d["artifacts"][0]["runtime"] = "tensorrt"
    with pytest.raises(ManifestError, match="runtime"):
        c.Manifest.parse(d)
    d = _manifest_dict()
    d["artifacts"][0]["sha256"] = "XYZ"
    with pytest.raises(ManifestError, match="sha256"):
        c.Manifest.parse(d)


@pytest.mark.parametrize(
    "digest", ["../../somewhere/x", "0" * 63, "0" * 65, "g" * 64, "0" * 63 + "/", ""]
)
def test_a_command_sha256_that_could_become_a_path_is_refused(digest: str) -> None:
    obj = {"schema": c.SCHEMA_CMD, "id": "d1", "kind": "deploy", "ts": 1.0, "expires": 2.0,
           "url": "http://hub/b.ekb", "sha256": digest, "size": 10, "version": 2}  # fmt: skip
    with pytest.raises(ContractError, match="64 hexadecimal"):
        c.Command.parse(obj)


def test_a_command_sha256_is_normalised_to_lower_case() -> None:
    obj = {"schema": c.SCHEMA_CMD, "id": "d1", "kind": "deploy", "ts": 1.0, "expires": 2.0,
           "url": "http://hub/b.ekb", "sha256": "AB" * 32, "size": 10, "version": 2}  # fmt: skip
    assert c.Command.parse(obj).sha256 == "ab" * 32


def test_artifact_tolerance_lives_in_metrics_and_round_trips() -> None:
    d = _manifest_dict()
    assert c.Manifest.parse(d).artifacts[0].tolerance is None  # a bundle without one
    own = {"max_mean_abs_error": 0.005, "min_top1_agreement": 0.9375}
    d["artifacts"][0]["metrics"][c.VARIANT_TOLERANCE_KEY] = own
    m = c.Manifest.parse(d)
    assert m.artifacts[0].tolerance == own
    # kept verbatim inside metrics: what an older reader re-serialises is what was signed
    assert m.to_dict()["artifacts"][0]["metrics"][c.VARIANT_TOLERANCE_KEY] == own
    again = c.Manifest.parse(json.loads(json.dumps(m.to_dict())))
    assert again.canonical_bytes() == m.canonical_bytes()


@pytest.mark.parametrize(
    ("tol", "match"),
    [
        ("0.05", "must be a non-empty object"),
        ({}, "must be a non-empty object"),
        ({"max_mean_abs_err": 0.1}, "unknown key"),
        ({"max_mean_abs_error": "0.1"}, "must be a number"),
        ({"max_mean_abs_error": True}, "must be a number"),
        ({"max_mean_abs_error": -0.1}, ">= 0"),
        ({"max_mean_abs_error": float("inf")}, ">= 0"),
        ({"min_top1_agreement": 1.5}, "at most 1"),
    ],
)
def test_bad_artifact_tolerance_is_refused(tol: object, match: str) -> None:
    d = _manifest_dict()
    d["artifacts"][0]["metrics"][c.VARIANT_TOLERANCE_KEY] = tol
    with pytest.raises(ManifestError, match=rf"artifacts\[0\]: metrics.golden_tolerance.*{match}"):
        c.Manifest.parse(d)
