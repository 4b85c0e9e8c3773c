"""Produce every requested variant's model file, each failure kept to its own target.

Dependencies between targets: ONNX Runtime int8 and both OpenVINO variants start from the
fp32 ONNX export, OpenVINO int8 from the fp32 IR. Those intermediates are built once in a
scratch directory even when their own target was not requested, and a failed intermediate
fails only its dependants, with the reason.

An int8 target has recipes (cloud/export/recipes.py). With more than one, every recipe is
built, evaluated on the *validation* split with the real edge backend, judged there by the
gate's rules (cloud/export/gate.py) and timed in rotating blocks; the fastest recipe that
passes is kept, or the most accurate (then fastest) when none passes. Every candidate is
listed in ``variant.candidates`` and the chosen one's name in ``metrics.recipe``.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cloud.export import model_filename
from cloud.export.convert import Converted, to_litert_fp32, to_onnx_fp32, to_openvino_fp32
from cloud.export.evaluate import evaluate_variant, time_variants
from cloud.export.gate import FloatAnswers, GateRules, judge
from cloud.export.quiet import captured
from cloud.export.recipes import Recipe, RecipeInputs, recipes_for
from cloud.export.variants import Variant

Progress = Callable[[str], None]
CANDIDATE_CALLS = 100  # timed calls per int8 recipe candidate
CANDIDATE_BUDGET_S = 10.0


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
    rules: GateRules = field(default_factory=GateRules)  # judges recipes on validation
    labels: list[str] | None = None  # class names (default: the class indices)


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


def _inputs(ctx: BuildContext, inter: _Intermediates) -> RecipeInputs:
    return RecipeInputs(
        model=ctx.model,
        calibration=ctx.calibration,
        onnx_fp32=lambda: inter.onnx().path,
        ir_fp32=lambda: inter.ir().path,
        scratch=ctx.scratch,
    )


def _val_answers(ctx: BuildContext, n_classes: int) -> FloatAnswers:
    labels = ctx.labels or [str(k) for k in range(n_classes)]
    pred = np.asarray(ctx.float_pred_val)
    return FloatAnswers(y_test=ctx.y_val, test_pred=pred, all_pred=pred, labels=labels)


def _candidate(recipe: Recipe, probe: Variant) -> dict[str, Any]:
    m, c = probe.metrics, probe.converted
    return {
        "name": recipe.name,
        "val_accuracy": m.get("accuracy"),
        "val_agreement": m.get("agreement"),
        "val_gate": probe.gate.get("decision"),
        "latency_ms": m.get("latency_ms"),
        "timed_calls": m.get("timed_calls"),
        "threads": probe.backend.get("threads"),
        "size": c.size if c is not None else None,
        "error": probe.error,
        "chosen": False,
    }


def _probe(ctx: BuildContext, target: str, recipe: Recipe, inputs: RecipeInputs) -> Variant:
    """Build one recipe into scratch/recipes/ and measure it on validation (errors kept)."""
    probe = Variant(target)
    out = ctx.scratch / "recipes" / target / recipe.name / Path(model_filename(target)).name
    try:
        with captured() as log:
            probe.converted = recipe.build(inputs, out)
    except Exception as exc:
        probe.fail("quantise", exc, log.tail(1))
        return probe
    try:
        with captured() as log:
            evaluate_variant(probe, ctx.scratch, ctx.x_val, ctx.y_val, ctx.float_pred_val)
    except Exception as exc:
        probe.fail("evaluate", exc, log.tail(1))
    return probe


def choose(probes: list[Variant], answers: FloatAnswers, rules: GateRules) -> Variant | None:
    """The fastest probe the gate passes on validation, else the most accurate (then
    fastest); None when every probe failed. Fills each probe's ``gate``."""
    ok: list[Variant] = []
    for p in probes:
        if p.ok and p.scores is not None:
            p.pred_all = p.scores.argmax(axis=1)  # validation rows only
            judge(p, answers, rules)
            ok.append(p)

    def latency(p: Variant) -> float:
        return float(p.metrics.get("latency_ms") or float("inf"))

    passed = [p for p in ok if p.included]
    if passed:
        return min(passed, key=latency)
    ranked = sorted(ok, key=lambda p: (-p.metrics["accuracy"], latency(p)))
    return ranked[0] if ranked else None


def _int8(ctx: BuildContext, inter: _Intermediates, dest: Path, variant: Variant) -> Converted:
    """Build the target's recipes and keep one (see the module docstring)."""
    recipes, inputs = recipes_for(variant.target), _inputs(ctx, inter)
    if len(recipes) == 1:  # nothing to choose: no validation pass, no timing
        converted = recipes[0].build(inputs, dest)
        entry = _candidate(recipes[0], Variant(variant.target, converted=converted))
        variant.candidates.append({**entry, "chosen": True})
        variant.metrics["recipe"] = recipes[0].name
        return converted
    probes = [_probe(ctx, variant.target, r, inputs) for r in recipes]
    measured = [p for p in probes if p.ok]
    with captured():
        time_variants(
            measured, ctx.scratch, ctx.x_val, calls=CANDIDATE_CALLS, budget_s=CANDIDATE_BUDGET_S
        )
    n_classes = next((p.scores.shape[1] for p in measured if p.scores is not None), 0)
    best = choose(probes, _val_answers(ctx, n_classes), ctx.rules)
    for recipe, p in zip(recipes, probes, strict=True):
        variant.candidates.append({**_candidate(recipe, p), "chosen": p is best})
    if best is None or best.converted is None:
        reasons = (f"{r.name}: {p.error}" for r, p in zip(recipes, probes, strict=True))
        raise RuntimeError("; ".join(reasons))
    variant.metrics["recipe"] = recipes[probes.index(best)].name
    return _place(best.converted, dest)


def describe_candidate(c: dict[str, Any]) -> str:
    """One progress line for a recipe candidate."""
    if c["error"]:
        return f"        recipe {c['name']}: FAILED: {c['error']}"
    if c["val_accuracy"] is None:
        return f"        recipe {c['name']} (the only one)"
    lat = f"{c['latency_ms']:.3f} ms" if c["latency_ms"] else "untimed"
    return (
        f"        recipe {c['name']}: val accuracy {100 * c['val_accuracy']:.2f}%, "
        f"gate {c['val_gate']}, p50 {lat}{'  <- chosen' if c['chosen'] else ''}"
    )


def _build_one(ctx: BuildContext, inter: _Intermediates, variant: Variant) -> Converted:
    dest = ctx.root / model_filename(variant.target)
    target = variant.target
    if target == "litert-fp32":
        return to_litert_fp32(ctx.model, dest)
    if target == "onnxruntime-fp32":
        return _place(inter.onnx(), dest)
    if target == "openvino-fp32":
        return _place(inter.ir(), dest)
    if target.endswith("-int8"):
        return _int8(ctx, inter, dest, variant)
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
        for c in variant.candidates:  # printed here: the build's output was captured
            ctx.progress(describe_candidate(c))
        if variant.converted is not None:
            ctx.progress(
                f"      {target}: {variant.converted.size / 1024:.1f} KiB "
                f"in {variant.seconds[step]:.1f} s"
            )
        else:
            ctx.progress(f"      {target}: FAILED: {variant.error}")
    return variants
