"""The exporter's ``requires``: the runtime version it evaluated with, memory kept."""

from __future__ import annotations

from importlib.metadata import version

from cloud.export.requires import runtime_requirements, with_requirements
from edge.contract import Artifact


def test_runtime_requirements_name_the_installed_package() -> None:
    assert runtime_requirements("onnxruntime") == {
        "runtime_version": version("onnxruntime"),
        "runtime_package": "onnxruntime",
        "arch": None,
    }
    assert runtime_requirements("nonsense") == {"arch": None}  # nothing to state


def test_with_requirements_keeps_the_memory_measurement() -> None:
    metrics = {"latency_ms": 1.0, "requires": {"memory_mb": 41.5, "arch": None}}
    out = with_requirements(metrics, "onnxruntime")
    assert out["requires"]["memory_mb"] == 41.5
    assert out["requires"]["runtime_version"] == version("onnxruntime")
    assert metrics["requires"] == {"memory_mb": 41.5, "arch": None}  # input untouched
    obj = {"file": "m.onnx", "sha256": "0" * 64, "size": 1, "runtime": "onnxruntime",
           "precision": "fp32", "metrics": out}  # fmt: skip
    req = Artifact.parse(obj, "a").requires  # what the exporter writes parses
    assert req is not None and req.memory_mb == 41.5 and req.arch is None
