"""Produce every requested variant's model file, each failure kept to its own target.

Dependencies between targets: ONNX Runtime int8 and both OpenVINO variants start from the
fp32 ONNX export, OpenVINO int8 from the fp32 IR. Those intermediates are built once in a
scratch directory even when their own target was not requested, and a failed intermediate
fails only its dependants, with the reason. For ONNX Runtime int8 both weight granularities
(per-tensor and per-channel) are built and measured on the *validation* split with the
real backend; the better one (accuracy, then median latency) is kept.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cloud.export import model_filename
from cloud.export.convert import Converted, to_litert_fp32, to_onnx_fp32, to_openvino_fp32
from cloud.export.evaluate import evaluate_variant, time_variants
from cloud.export.quantize import onnx_int8, to_litert_int8, to_openvino_int8
from cloud.export.quiet import captured
from cloud.export.variants import Variant

Progress = Callable[[str], None]
CANDIDATE_CALLS = 100  # timed calls per ONNX Runtime int8 candidate


@dataclass
class BuildContext:
    """What every builder needs; ``root`` is the bundle staging dir (models/ under it)."""

    model: Any  # the float Keras model
    root: Path
    scratch: Path
    calibration: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    float_pred_val: np.ndarray
    progress: Progress


class _Intermediates:
    """fp32 ONNX and IR files shared by several targets; built at most once."""

    def __init__(self, ctx: BuildContext) -> None:
        self.ctx = ctx
        self._cache: dict[str, Converted | BaseException] = {}

    def get(self, key: str, build: Callable[[], Converted]) -> Converted:
        if key not in self._cache:
            try:
                with captured() as log:
                    self._cache[key] = build()
            except Exception as exc:
                self._cache[key] = RuntimeError(f"{key} export failed: {exc} {log.tail(1)}")
        got = self._cache[key]
        if isinstance(got, BaseException):
            raise got
        return got

    def onnx(self) -> Converted:
        return self.get(
            "onnx-fp32", lambda: to_onnx_fp32(self.ctx.model, self.ctx.scratch / "fp32.onnx")
        )

    def ir(self) -> Converted:
        onnx = self.onnx()
        return self.get(
            "openvino-fp32", lambda: to_openvino_fp32(onnx.path, self.ctx.scratch / "fp32.xml")
        )


def _place(src: Converted, dest: Path) -> Converted:
    """Copy an intermediate (and its companions) to its bundle path."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src.path, dest)
    companions = []
    for c in src.companions:
        target = dest.with_suffix(c.suffix)
        shutil.copyfile(c, target)
        companions.append(target)
    return Converted(dest, src.inputs, src.outputs, companions, dict(src.details))


def _ort_int8(ctx: BuildContext, inter: _Intermediates, dest: Path, variant: Variant) -> Converted:
    fp32 = inter.onnx()
    probes: list[Variant] = []
    for per_channel in (False, True):
        tag = "per-channel" if per_channel else "per-tensor"
        with captured():
            cand = onnx_int8(
                fp32.path, ctx.calibration, ctx.scratch / f"int8-{tag}.onnx", per_channel
            )
        probe = Variant("onnxruntime-int8", converted=cand)
        evaluate_variant(probe, ctx.scratch.parent, ctx.x_val, ctx.y_val, ctx.float_pred_val)
        probes.append(probe)
    time_variants(probes, ctx.scratch.parent, ctx.x_val, calls=CANDIDATE_CALLS, budget_s=10.0)
    ranked = sorted(
        (p for p in probes if p.ok),
        key=lambda p: (-p.metrics["accuracy"], p.metrics.get("latency_ms", float("inf"))),
    )
    if not ranked:
        raise RuntimeError("; ".join(f"{p.error}" for p in probes))
    for p in probes:
        assert p.converted is not None
        variant.candidates.append(
            {
                "weights": "per-channel" if p.converted.details["per_channel"] else "per-tensor",
                "val_accuracy": p.metrics.get("accuracy"),
                "val_agreement": p.metrics.get("agreement"),
                "latency_ms": p.metrics.get("latency_ms"),
                "timed_calls": p.metrics.get("timed_calls"),
                "size": p.converted.size,
                "chosen": p is ranked[0],
            }
        )
    assert ranked[0].converted is not None
    return _place(ranked[0].converted, dest)


def _build_one(ctx: BuildContext, inter: _Intermediates, variant: Variant) -> Converted:
    dest = ctx.root / model_filename(variant.target)
    target = variant.target
    if target == "litert-fp32":
        return to_litert_fp32(ctx.model, dest)
    if target == "litert-int8":
        return to_litert_int8(ctx.model, ctx.calibration, dest)
    if target == "onnxruntime-fp32":
        return _place(inter.onnx(), dest)
    if target == "onnxruntime-int8":
        return _ort_int8(ctx, inter, dest, variant)
    if target == "openvino-fp32":
        return _place(inter.ir(), dest)
    if target == "openvino-int8":
        return to_openvino_int8(inter.ir().path, ctx.calibration, dest)
    raise ValueError(f"no builder for target {target!r}")


def build_variants(ctx: BuildContext, targets: list[str]) -> list[Variant]:
    """Convert/quantise every target; a failure is recorded on its variant, never raised."""
    inter = _Intermediates(ctx)
    variants: list[Variant] = []
    for i, target in enumerate(targets, 1):
        variant = Variant(target)
        variants.append(variant)
        step = "quantise" if target.endswith("int8") else "convert"
        ctx.progress(f"[{i}/{len(targets)}] {step} {target} ...")
        start = time.perf_counter()
        try:
            with captured() as log:
                variant.converted = _build_one(ctx, inter, variant)
        except Exception as exc:
            variant.fail(step, exc, log.tail(1))
        variant.seconds[step] = time.perf_counter() - start
        if variant.converted is not None:
            ctx.progress(
                f"      {target}: {variant.converted.size / 1024:.1f} KiB "
                f"in {variant.seconds[step]:.1f} s"
            )
        else:
            ctx.progress(f"      {target}: FAILED: {variant.error}")
    return variants
