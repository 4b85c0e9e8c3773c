"""A deploy of a bundle this device cannot run, sent straight to the agent (bypassing the
hub's check): refused at verifying, before any model is loaded, with the hub's own reason
and ``detail.code = "incompatible"``; the old model keeps serving, nothing is left behind.
And among a bundle's variants, one the device does not meet the requirements of is never
the one chosen."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.bundle import extract_bundle
from edge.runtime import describe_device, self_test
from tests.bundles import golden_inputs, make_bundle, make_onnx, quantize_onnx
from tests.edge.attacks.conftest import Lab

ORT = version("onnxruntime")


def test_a_bundle_needing_a_newer_runtime_is_refused_as_incompatible(lab: Lab) -> None:
    lab.start()
    newer = {"requires": {"runtime_version": "99.1.0", "runtime_package": "onnxruntime"}}
    bundle = make_bundle(lab.tmp / "newer.ekb", lab.kit["priv_a"], version=2, metrics=newer)
    before = lab.files()
    cid = lab.deploy(bundle, 2)
    event = lab.refused(cid, "needs onnxruntime >= 99.1.0")
    assert event["detail"] == {
        "failed_step": "verifying",
        "code": "incompatible",
        "reason": "no variant of digits v2 runs on this device: onnxruntime-fp32 needs "
        f"onnxruntime >= 99.1.0, the device has {ORT}",
    }
    assert not [e for e in lab.events() if e["command"] == cid and e["step"] == "self_test"]
    assert lab.serving() == "digits-1"
    assert lab.leftovers(before) == set()


def test_a_pinned_device_class_refusal_carries_the_code_too(lab: Lab) -> None:
    lab.start(pin_runtime="litert")
    cid = lab.deploy(lab.kit["d2"], 2)
    event = lab.refused(cid, "another device class")
    assert event["detail"]["code"] == "incompatible"


def test_a_runnable_bundle_is_still_installed(lab: Lab) -> None:
    """The check lets through what the device meets: requirements at its own version."""
    lab.start()
    same = {"requires": {"runtime_version": ORT, "runtime_package": "onnxruntime", "arch": None}}
    bundle = make_bundle(lab.tmp / "same.ekb", lab.kit["priv_a"], version=2, metrics=same)
    cid = lab.deploy(bundle, 2)
    assert lab.outcome(cid)["step"] == "committed"


def _two_variant_bundle(tmp: Path, key: Path, fp32_metrics: dict[str, Any]) -> Path:
    import onnxruntime as ort

    from cloud.bundle import ArtifactSource, GoldenSet, build_bundle
    from edge.contract import TensorSpec
    from tests.digits import DIGITS_LABELS, DIGITS_PREPROCESSING

    fp32 = make_onnx(tmp / "fp32.onnx")
    int8 = quantize_onnx(fp32, tmp / "int8.onnx")
    x = golden_inputs(16)
    sess = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"])
    y = np.concatenate([sess.run(None, {"input": x[i : i + 1]})[0] for i in range(len(x))])
    out = tmp / "two.ekb"
    build_bundle(
        out, name="digits", version=1, labels=DIGITS_LABELS,
        inputs=[TensorSpec("input", [1, 8, 8, 1], "float32")],
        outputs=[TensorSpec("scores", [1, 10], "float32")],
        preprocessing=DIGITS_PREPROCESSING,
        artifacts=[ArtifactSource(fp32, "onnxruntime", "fp32", {"latency_ms": 0.001,
                                                                **fp32_metrics}),
                   ArtifactSource(int8, "onnxruntime", "int8", {"latency_ms": 5.0})],
        private_key=key,
        golden=GoldenSet(x, y, tolerance={"max_mean_abs_error": 0.2, "min_top1_agreement": 0.5}),
    )  # fmt: skip
    return out


@pytest.mark.parametrize("memory_mb, chosen", [(10_000_000.0, "onnxruntime-int8"), (1.0, None)])
def test_a_variant_the_device_does_not_meet_is_never_chosen(
    tmp_path: Path, attack_kit: dict[str, Path], memory_mb: float, chosen: str | None
) -> None:
    bundle = _two_variant_bundle(
        tmp_path, attack_kit["priv_a"], {"requires": {"memory_mb": memory_mb}}
    )
    manifest = extract_bundle(bundle, tmp_path / "x", attack_kit["pub_a"])
    caps = {**describe_device(), "memory_available_mb": 4096.0}
    report = self_test(tmp_path / "x", manifest, capabilities=caps, time_budget=0.2)
    by = {v.target: v for v in report.variants}
    if chosen is None:  # it fits: both are tested
        assert by["onnxruntime-fp32"].status == "ok"
        assert report.chosen is not None
        return
    assert report.chosen is not None and report.chosen.target == chosen
    assert by["onnxruntime-fp32"].status == "incompatible"
    assert by["onnxruntime-fp32"].reason == (
        "onnxruntime-fp32 needs 10000000 MB of memory, the device has 4096 MB available"
    )
    assert by["onnxruntime-fp32"].latency_ms is None  # never loaded
