"""A variant's ``requires``: parsing, the version compare, and the check hub and agent share."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from edge.contract import (
    Artifact,
    Manifest,
    Requirements,
    normalise_arch,
    parse_version,
    runnable,
    variant_problem,
)
from edge.errors import ManifestError

SHA = "0" * 64


def artifact(runtime: str = "onnxruntime", precision: str = "fp32", **requires: Any) -> Artifact:
    metrics: dict[str, Any] = {"latency_ms": 1.0}
    if requires:
        metrics["requires"] = requires
    obj = {"file": f"models/{runtime}-{precision}.x", "sha256": SHA, "size": 1}
    return Artifact.parse(
        {**obj, "runtime": runtime, "precision": precision, "metrics": metrics}, "a"
    )


def manifest(*artifacts: Artifact) -> Manifest:
    return Manifest.parse(
        {
            "format": "edgekit.bundle/1",
            "name": "digits",
            "version": 3,
            "created": "2026-01-01T00:00:00Z",
            "labels": ["a", "b"],
            "inputs": [{"name": "input", "shape": [1, 4], "dtype": "float32"}],
            "outputs": [{"name": "scores", "shape": [1, 2], "dtype": "float32"}],
            "artifacts": [a.to_dict() for a in artifacts],
        }
    )


def caps(**runtimes: Any) -> dict[str, Any]:
    """Capabilities as describe_device() publishes them; ``runtimes`` name -> version."""
    out: dict[str, Any] = {"cpu": {"arch": "x86_64"}, "memory_available_mb": 1000.0}
    out["runtimes"] = {
        name: {"available": False, "reason": "not installed (pip install x)"}
        for name in ("litert", "onnxruntime", "openvino")
    }
    for name, version in runtimes.items():
        out["runtimes"][name] = {"available": True, "version": version, "package": None}
    return out


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize(
    "low, high",
    [
        ("1.18.1", "1.20.0"),
        ("1.9.0", "1.10.0"),  # numeric, not string, order
        ("2.3", "2.3.1"),
        ("1.4.0", "2.3.0"),
        ("2024.4.0-16579", "2024.5.0"),
        ("1.20.0rc1", "1.20.0"),  # a pre-release comes before its release
        ("2.0.0.dev1", "2.0.0"),
        ("2025.2.0", "2026.4.1"),
    ],
)
def test_versions_compare_by_number(low: str, high: str) -> None:
    lo, hi = parse_version(low), parse_version(high)
    assert lo is not None and hi is not None
    assert lo < hi


@pytest.mark.parametrize(
    "a, b",
    [
        ("1.20", "1.20.0"),
        ("2024.4.0-16579", "2024.4.0"),
        ("1.18.1+cu118", "1.18.1"),
        ("v2.3.0", "2.3.0"),
    ],
)
def test_equal_versions(a: str, b: str) -> None:
    assert parse_version(a) == parse_version(b)


@pytest.mark.parametrize("text", ["unknown", "", "abc", "x1.2", None, 3, ["1"]])
def test_unreadable_versions_parse_to_none(text: Any) -> None:
    assert parse_version(text) is None


def test_arch_spellings() -> None:
    assert normalise_arch("arm64") == normalise_arch("aarch64") == "aarch64"
    assert normalise_arch("AMD64") == "x86_64"
    assert normalise_arch("armv7l") == "armv7l"


# --------------------------------------------------------------------------- parsing


def test_requires_round_trips_inside_metrics() -> None:
    a = artifact(runtime_version="1.20.0", runtime_package="onnxruntime", arch=None, memory_mb=41.5)
    assert a.requires == Requirements("1.20.0", "onnxruntime", None, 41.5)
    again = Artifact.parse(a.to_dict(), "a")
    assert again == a and again.to_dict()["metrics"]["requires"]["memory_mb"] == 41.5
    assert Requirements.parse(a.requires.to_dict(), "r") == a.requires
    arm = artifact(arch=["x86_64", "aarch64"])
    assert arm.requires is not None and arm.requires.arch == ("x86_64", "aarch64")


def test_old_bundles_state_nothing() -> None:
    assert artifact().requires is None
    plain = artifact()
    with_null = Artifact.parse({**plain.to_dict(), "metrics": {"requires": None}}, "a")
    assert with_null.requires is None


def test_unknown_requirement_keys_are_ignored() -> None:
    a = artifact(runtime_version="1.0", gpu="cuda12")  # from a newer exporter
    assert a.requires == Requirements(runtime_version="1.0")


@pytest.mark.parametrize(
    "requires, message",
    [
        ("1.20.0", "metrics.requires must be an object"),
        ({"runtime_version": 1.2}, "runtime_version must be a version string"),
        ({"runtime_version": "latest"}, "runtime_version must be a version string"),
        ({"runtime_version": ""}, "runtime_version must be a version string"),
        ({"runtime_package": ""}, "runtime_package must be a non-empty string"),
        ({"arch": "x86_64"}, "arch must be null or a non-empty list"),
        ({"arch": []}, "arch must be null or a non-empty list"),
        ({"arch": ["x86_64", 64]}, "arch must be null or a non-empty list"),
        ({"memory_mb": "40"}, "memory_mb must be a finite number >= 0"),
        ({"memory_mb": -1}, "memory_mb must be a finite number >= 0"),
        ({"memory_mb": float("nan")}, "memory_mb must be a finite number >= 0"),
        ({"memory_mb": True}, "memory_mb must be a finite number >= 0"),
    ],
)
def test_bad_requires_are_refused_with_the_field(requires: Any, message: str) -> None:
    obj = artifact().to_dict()
    obj["metrics"]["requires"] = requires
    with pytest.raises(ManifestError, match=message) as err:
        Artifact.parse(obj, "artifacts[0]")
    assert "artifacts[0]" in str(err.value)


# --------------------------------------------------------------------------- the check


def test_a_missing_runtime_is_named_with_its_reason() -> None:
    problem = variant_problem(artifact(), caps(litert="2.3.0"))
    assert problem == (
        "onnxruntime-fp32 needs onnxruntime, which the device does not have "
        "(not installed (pip install x))"
    )


def test_an_older_runtime_is_refused() -> None:
    a = artifact(runtime_version="1.20.0", runtime_package="onnxruntime")
    assert variant_problem(a, caps(onnxruntime="1.18.1")) == (
        "onnxruntime-fp32 needs onnxruntime >= 1.20.0, the device has 1.18.1"
    )
    assert variant_problem(a, caps(onnxruntime="1.20.0")) is None
    assert variant_problem(a, caps(onnxruntime="1.32.0")) is None


def test_what_cannot_be_proven_is_allowed() -> None:
    a = artifact(runtime_version="2.3.0", runtime_package="ai-edge-litert", runtime="litert")
    assert variant_problem(a, caps(litert="unknown")) is None  # version unreadable
    other = caps(litert="2.14.0")
    other["runtimes"]["litert"]["package"] = "tflite-runtime"  # numbered differently
    assert variant_problem(a, other) is None
    same = caps(litert="1.4.0")
    same["runtimes"]["litert"]["package"] = "ai-edge-litert"
    assert variant_problem(a, same) == (
        "litert-fp32 needs ai-edge-litert >= 2.3.0, the device has 1.4.0"
    )
    assert variant_problem(a, {}) is None  # never described itself: nothing to judge


def test_architecture_and_memory() -> None:
    a = artifact(arch=["aarch64"], memory_mb=600)
    c = caps(onnxruntime="1.32.0")
    problem = variant_problem(a, c)
    assert problem is not None and "is built for aarch64, the device is x86_64" in problem
    assert "memory" not in problem  # 600 MB fits in 1000
    arm = copy.deepcopy(c)
    arm["cpu"]["arch"] = "arm64"  # macOS spelling of aarch64
    assert variant_problem(a, arm) is None
    arm["memory_available_mb"] = 512.0
    assert variant_problem(a, arm) == (
        "onnxruntime-fp32 needs 600 MB of memory, the device has 512 MB available"
    )
    arm["cpu"]["arch"] = "unknown"
    arm["memory_available_mb"] = None
    assert variant_problem(a, arm) is None


def test_runnable_lists_every_variants_problem_when_none_fits() -> None:
    m = manifest(
        artifact("onnxruntime", "fp32", runtime_version="1.20.0"),
        artifact("openvino", "int8", runtime_version="2025.1.0"),
    )
    ok, reason = runnable(m, caps(litert="2.3.0", openvino="2024.4.0-16579"))
    assert ok == []
    assert reason == (
        "no variant of digits v3 runs on this device: onnxruntime-fp32 needs onnxruntime, "
        "which the device does not have (not installed (pip install x)); openvino-int8 needs "
        "openvino >= 2025.1.0, the device has 2024.4.0-16579"
    )
    ok, reason = runnable(m, caps(onnxruntime="1.32.0", openvino="2024.4.0"))
    assert [a.target for a in ok] == ["onnxruntime-fp32"] and reason == ""
