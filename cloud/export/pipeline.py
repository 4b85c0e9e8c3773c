"""``edgekit export`` end to end: convert -> quantise -> evaluate -> gate -> golden set ->
model card -> signed bundle.

Inputs are checked first (run dir, key, options), so a typo fails in a second, not after
minutes of conversion. Every target is then built and measured independently; the gate
decides what ships; report.json in the bundle keeps the full table including the variants
that were left out and why. When nothing survives, no bundle is written, the report is
saved beside the requested output instead, and ``NoVariantError`` lists the reasons.
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cloud.card_info import CardInfo, card_info_from_run, load_card_info
from cloud.errors import NoVariantError
from cloud.export import golden as golden_set
from cloud.export import parse_targets
from cloud.export.build import BuildContext, build_variants
from cloud.export.evaluate import (
    ExtraInputs,
    agreement_rows,
    describe_timing,
    evaluate_variant,
    fill_speedups,
    infer_each,
    loaded_backend,
    time_variants,
)
from cloud.export.fairness import group_report
from cloud.export.gate import (
    DEFAULT_MIN_AGREEMENT,
    DEFAULT_MIN_CLASS_AGREEMENT,
    FloatAnswers,
    GateRules,
    apply_gate,
)
from cloud.export.memory import measure_survivors, with_memory
from cloud.export.quantize import DEFAULT_CALIBRATION_SAMPLES, calibration_set
from cloud.export.quiet import captured
from cloud.export.requires import with_requirements
from cloud.export.run import TrainingRun, load_run
from cloud.export.stats import DEFAULT_CONFIDENCE
from cloud.export.variants import Variant
from cloud.paths import file_name, scrub
from cloud.progress import StepBar
from edge.contract import Manifest, TensorSpec
from edge.errors import ConfigError

REPORT_SCHEMA = "edgekit.export-report/1"
Progress = Callable[[str], None]


def stderr_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class ExportOptions:
    """Everything ``edgekit export`` takes; ``check()`` validates it before any work."""

    run_dir: Path
    out: Path
    name: str
    version: int
    key: Path | None
    targets: list[str] = field(default_factory=lambda: parse_targets(None))
    max_accuracy_drop: float | None = None  # None: the statistical gate with 1 point
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    min_class_agreement: float = DEFAULT_MIN_CLASS_AGREEMENT
    gate_confidence: float = DEFAULT_CONFIDENCE
    golden_size: int = golden_set.DEFAULT_GOLDEN_SIZE
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES
    seed: int = 0
    card_info: Path | None = None  # --card-info FILE; None: what train recorded in run.json

    def check(self) -> None:
        if self.key is None:
            raise ConfigError(
                "a bundle is always signed: pass --key PRIVATE_KEY "
                "(create one with `edgekit keys generate --out DIR`, then use DIR/edgekit.key)"
            )
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", self.name):
            raise ConfigError(f"--name {self.name!r}: use 1-64 letters, digits, '.', '_' or '-'")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ConfigError(f"--version must be an integer >= 1, got {self.version!r}")
        self.targets = parse_targets(self.targets)
        self.gate_rules()
        if self.golden_size < 1:
            raise ConfigError(f"--golden-size must be at least 1, got {self.golden_size}")
        if self.calibration_samples < 1:
            raise ConfigError("the calibration set needs at least one sample")
        if self.out.exists() and self.out.is_dir():
            raise ConfigError(f"--out {self.out} is a directory; give a bundle file name")
        if not self.out.parent.is_dir():
            raise ConfigError(f"--out: directory {self.out.parent} does not exist")
        if self.card_info is not None:
            load_card_info(self.card_info)  # a typo in a key fails now, not after conversion

    def gate_rules(self) -> GateRules:
        """The gate's thresholds, validated (ConfigError names the flag)."""
        return GateRules(
            self.max_accuracy_drop,
            self.min_agreement,
            self.min_class_agreement,
            self.gate_confidence,
        ).checked()


@dataclass
class ExportResult:
    manifest: Manifest
    bundle: Path
    report: dict[str, Any]
    variants: list[Variant]


def _lineage(run: TrainingRun, opts: ExportOptions) -> dict[str, Any]:
    info = run.info
    dataset = info.get("dataset") or {}
    return {
        # file names only: the manifest travels, the build machine's directories do not
        "dataset": scrub({k: dataset.get(k) for k in ("source", "fingerprint")}),
        # every dataset version trained on: the original and any field version, with how
        # many samples came from which devices (the hub's champion check reads these)
        "datasets": scrub(dataset_versions(dataset)),
        "code_version": info.get("code_version"),
        "hyperparameters": scrub(info.get("hyperparameters", {})),
        "seed": info.get("seed"),
        "arch": info.get("arch"),
        "trained": info.get("created"),
        "training_metrics": info.get("metrics", {}),
        "group_column": run.group_column,  # lineage only: the device never needs it
        "excluded_columns": info.get("excluded_columns") or [],
        "export": {"targets": opts.targets, "gate": _gate_rules(opts)},
    }


def dataset_versions(dataset: dict[str, Any]) -> list[dict[str, Any]]:
    """run.json's dataset versions; a run from before them names its one source."""
    versions = dataset.get("versions")
    if isinstance(versions, list):
        return [v for v in versions if isinstance(v, dict)]
    samples = (dataset.get("report") or {}).get("samples")
    source = {k: dataset.get(k) for k in ("source", "fingerprint")}
    return [{"role": "original", **source, "samples": samples}]


def _gate_rules(opts: ExportOptions) -> dict[str, Any]:
    """The thresholds for the manifest's lineage (the methods are in report.json)."""
    return {k: v for k, v in opts.gate_rules().describe().items() if k != "methods"}


def _golden(
    run: TrainingRun, survivors: list[Variant], root: Path, float_scores: np.ndarray, n: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """Golden indices into the test split, and the measured tolerance block (the shared
    tolerance and each variant's own, see cloud/export/golden.py)."""
    idx = golden_set.pick_golden(run.y["test"], n, seed=0)
    x, reference = run.x["test"][idx], float_scores[idx]
    measured: dict[str, dict[str, float]] = {}
    for v in survivors:
        with captured(), loaded_backend(v, root) as backend:
            scores, _ = infer_each(backend, x)
        measured[v.target] = {
            k: round(val, 6) for k, val in golden_set.deviation(scores, reference).items()
        }
    tol = golden_set.tolerance(measured, len(idx))
    return idx, golden_set.summary(measured, tol, len(idx))


def write_card(
    root: Path,
    opts: ExportOptions,
    run: TrainingRun,
    float_scores: np.ndarray,
    variants: list[Variant],
    *,
    groups: dict[str, Any] | None = None,
    card_info: CardInfo | None = None,
) -> list[Path]:
    """The model card, its charts and data-report.json (cloud/export/card/), into ``root``.

    Every variant row carries its test scores, so the card measures each variant itself;
    permutation importance runs on the validation + test rows (topped up from training
    when they are few, see ``importance_rows``).
    """
    from cloud.export.card import importance_rows, write_model_card

    rows = [{**v.row(), "scores": v.scores} for v in variants]
    model = run.model()
    seed = int(run.info.get("seed") or opts.seed or 0)
    return write_model_card(
        root,
        name=opts.name,
        version=opts.version,
        run=run.info,
        labels=run.labels,
        y_true=run.y["test"],
        float_scores=float_scores,
        variants=rows,
        predict_fn=lambda x: np.asarray(model.predict(x, verbose=0, batch_size=1024)),
        x_test=run.x["test"],
        feature_names=run.info.get("feature_names") or None,
        explain_rows=importance_rows(run.x, run.y, seed) if run.x["test"].ndim == 2 else None,
        groups=groups,
        card_info=card_info,
    )


def _groups(
    run: TrainingRun, float_scores: np.ndarray, variants: list[Variant], confidence: float
) -> dict[str, Any] | None:
    """Metrics per group of the test split (cloud/export/fairness.py), or None without groups."""
    if run.groups is None or run.group_column is None:
        return None
    block = run.info.get("groups") or {}
    return group_report(
        column=run.group_column,
        y_true=run.y["test"],
        groups=run.groups["test"],
        float_scores=float_scores,
        variants=[{**v.row(), "scores": v.scores} for v in variants if v.ok],
        n_classes=len(run.labels),
        split_counts=block.get("counts") if isinstance(block.get("counts"), dict) else None,
        confidence=confidence,
    )


def _report(
    opts: ExportOptions,
    run: TrainingRun,
    float_acc: float,
    variants: list[Variant],
    golden: dict[str, Any] | None,
    seconds: dict[str, float],
) -> dict[str, Any]:
    return {
        "schema": REPORT_SCHEMA,
        "name": opts.name,
        "version": opts.version,
        "run_dir": file_name(opts.run_dir),
        "float_model": {"test_accuracy": round(float_acc, 6), "test_samples": len(run.y["test"])},
        "gate": {
            **opts.gate_rules().describe(),
            "agreement_inputs": agreement_rows(run.x, opts.seed).describe(),
        },
        "variants": scrub([v.row() for v in variants]),  # error texts may name temp dirs
        "included": [v.target for v in variants if v.included],
        "left_out": scrub({v.target: v.reason for v in variants if not v.included}),
        "golden": golden,
        "timing": describe_timing(variants),
        "seconds": {k: round(s, 2) for k, s in seconds.items()},
    }


def export(opts: ExportOptions, progress: Progress = stderr_progress) -> ExportResult:
    """Run the whole export; raises NoVariantError (with reasons) when nothing ships."""
    from cloud.bundle import ArtifactSource, GoldenSet, build_bundle
    from cloud.keys import load_private_key

    opts.check()
    assert opts.key is not None
    key = load_private_key(opts.key)  # fail on a bad key before minutes of conversion
    run = load_run(opts.run_dir)
    steps = StepBar(6 + 2 * len(opts.targets), f"export {opts.name} v{opts.version}")
    progress = steps.say(progress)  # lines above the bar (plain lines off a terminal)
    card_info = load_card_info(opts.card_info) if opts.card_info else card_info_from_run(run.info)
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    progress(f"loading {run.model_path} ...")
    with captured():
        model = run.model()
        float_scores = np.asarray(model.predict(run.x["test"], verbose=0, batch_size=256))
        float_val = np.asarray(model.predict(run.x["val"], verbose=0, batch_size=256))
        extra = ExtraInputs.predicted(
            agreement_rows(run.x, opts.seed),
            run.x,
            lambda x: np.asarray(model.predict(x, verbose=0, batch_size=256)),
        )
    float_pred = float_scores.argmax(1)
    float_acc = float(np.mean(float_pred == run.y["test"]))
    progress(
        f"float Keras model: test accuracy {100 * float_acc:.2f}% on {len(float_pred)} samples"
    )
    seconds["load"] = time.perf_counter() - t0
    steps.advance(1, "convert")

    with tempfile.TemporaryDirectory(prefix="edgekit-export-") as tmp:
        root, scratch = Path(tmp) / "bundle", Path(tmp) / "scratch"
        root.mkdir()
        scratch.mkdir()
        ctx = BuildContext(
            model=model,
            root=root,
            scratch=scratch,
            calibration=calibration_set(run.x["train"], opts.calibration_samples, opts.seed),
            x_val=run.x["val"],
            y_val=run.y["val"],
            float_pred_val=float_val.argmax(1),
            progress=progress,
            rules=opts.gate_rules(),
            labels=run.labels,
        )
        t = time.perf_counter()
        variants = build_variants(ctx, opts.targets)
        seconds["convert"] = time.perf_counter() - t
        steps.advance(len(opts.targets), "evaluate")  # a step per target built

        t = time.perf_counter()
        for v in variants:
            steps.advance(1, f"evaluate {v.target}")
            if not v.ok:
                continue
            progress(f"evaluate {v.target} on {len(float_pred)} test samples ...")
            start = time.perf_counter()
            try:
                with captured() as log:  # runtimes log delegate choices to fd 2
                    evaluate_variant(v, root, run.x["test"], run.y["test"], float_pred, extra)
            except Exception as exc:
                v.fail("evaluate", exc, log.tail(1))
                progress(f"      {v.target}: FAILED: {v.error}")
                continue
            v.seconds["evaluate"] = time.perf_counter() - start
            m = v.metrics
            progress(
                f"      {v.target}: accuracy {100 * m['accuracy']:.2f}%, "
                f"agreement with float {100 * m['agreement_all']:.2f}% "
                f"on {m['agreement_inputs']} inputs"
            )
        measured = [v for v in variants if v.ok]
        progress(f"timing {len(measured)} variant(s) in rotating blocks ...")
        with captured():
            time_variants(measured, root, run.x["test"])
        for v in measured:
            if v.ok:
                m = v.metrics
                progress(
                    f"      {v.target}: p50 {m['latency_ms']:.3f} ms, "
                    f"p95 {m['latency_p95_ms']:.3f} ms"
                )
        fill_speedups(variants)
        steps.advance(1, "gate")
        answers = FloatAnswers(
            y_test=run.y["test"],
            test_pred=float_pred,
            all_pred=np.concatenate([float_pred, extra.float_pred]),
            labels=run.labels,
        )
        survivors = apply_gate(variants, answers, opts.gate_rules())
        seconds["evaluate"] = time.perf_counter() - t
        steps.advance(1, "golden set")
        for v in variants:
            verdict = v.gate["reason"] if v.included else f"left out: {v.reason}"
            progress(f"gate {v.target}: {verdict}")
        groups = _groups(run, float_scores, variants, opts.gate_confidence)
        if not survivors:
            report = _report(opts, run, float_acc, variants, None, seconds)
            report["groups"] = groups
            saved = opts.out.with_name(opts.out.name + ".report.json")
            saved.write_text(json.dumps(report, indent=1), encoding="utf-8")
            reasons = "; ".join(f"{v.target}: {v.reason}" for v in variants)
            steps.close()
            raise NoVariantError(f"no variant passed the gate ({reasons}); report: {saved}")

        progress(f"golden set: measuring {len(survivors)} variant(s) ...")
        idx, golden = _golden(run, survivors, root, float_scores, opts.golden_size)
        for target, tol in golden["variant_tolerance"].items():
            progress(f"      {target}: tolerance {tol}")
        progress(f"memory: loading each of {len(survivors)} variant(s) in a fresh process ...")
        seconds["memory"] = measure_survivors(survivors, root, run.x["test"][idx], progress)
        steps.advance(1, "model card")
        progress("model card ...")
        t = time.perf_counter()
        with captured():
            card_files = write_card(
                root, opts, run, float_scores, variants, groups=groups, card_info=card_info
            )
        seconds["card"] = time.perf_counter() - t
        steps.advance(1, "signing")
        seconds["total"] = time.perf_counter() - t0
        report = _report(opts, run, float_acc, variants, golden, seconds)
        report["groups"] = groups
        report["card_info"] = None if card_info is None else card_info.to_dict()
        files: dict[str, Path | bytes] = {p.relative_to(root).as_posix(): p for p in card_files}
        files["report.json"] = json.dumps(report, indent=1).encode("utf-8")
        progress(f"signing and writing {opts.out} ...")
        manifest = build_bundle(
            opts.out,
            name=opts.name,
            version=opts.version,
            labels=run.labels,
            inputs=[TensorSpec.parse(run.info["input"], "run.json input")],
            outputs=[TensorSpec.parse(run.info["output"], "run.json output")],
            preprocessing=run.info["preprocessing"],
            artifacts=[
                ArtifactSource(
                    path=v.converted.path,
                    runtime=v.runtime,
                    precision=v.precision,
                    metrics=with_memory(
                        with_requirements(v.artifact(root).metrics, v.runtime), v.memory
                    ),
                    inputs=v.converted.inputs,
                    outputs=v.converted.outputs,
                    companions=v.converted.companions,
                    tolerance=golden["variant_tolerance"][v.target],
                )
                for v in survivors
                if v.converted is not None
            ],
            private_key=key,
            golden=GoldenSet(
                inputs=run.x["test"][idx],
                outputs=float_scores[idx],
                labels=run.y["test"][idx],
                tolerance=golden["tolerance"],
            ),
            reference=run.reference,
            files=files,
            lineage=_lineage(run, opts),
        )
    steps.advance(1)
    steps.close()
    progress(
        f"done: {opts.out} with {len(survivors)} variant(s) "
        f"({', '.join(v.target for v in survivors)}) in {seconds['total']:.1f} s"
    )
    return ExportResult(manifest, opts.out, report, variants)
