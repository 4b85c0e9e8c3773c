"""The model card: one markdown file plus charts that travel inside every bundle.

The exporter calls :func:`write_model_card` once it has evaluated and gated every variant.
The card answers what a reviewer asks before shipping a model to a fleet (the sections of
Google's Model Cards and Hugging Face model cards): who made it and for what, what data and
code made it, how good it is per class and per group with intervals, whether its
confidences can be trusted, what each runtime variant costs, loses and why the gate kept
it, and what the model looks at. One module per part:

- ``text``: number, interval and table formatting, path scrubbing
- ``overview``: header, intended use, training warnings, data and lineage
- ``quality``: headline numbers with intervals, performance, confusion, calibration
- ``two_class``: ROC, precision-recall, threshold table (two-class models)
- ``variants``: runtime table, per-variant quality, gate decisions, quantisation
- ``explanation``: permutation importance or occlusion saliency

The user's card fields and the per-group metrics are rendered by
``cloud.export.card_fields``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cloud.card_info import CardInfo
from cloud.export import charts
from cloud.export.card import fields as card_fields
from cloud.export.card import overview, quality
from cloud.export.card import variants as variant_sections
from cloud.export.card.explanation import (
    ExplainRows,
    importance_rows,
    importance_section,
    saliency_section,
)
from cloud.export.card.text import pct, pct_ci, strip_paths, table, target_name
from cloud.export.card.two_class import two_class_section
from edge.errors import DataError

CARD_NAME = "model_card.md"
CHARTS_DIR = "charts"

__all__ = [
    "CARD_NAME",
    "CHARTS_DIR",
    "ExplainRows",
    "importance_rows",
    "pct",
    "pct_ci",
    "table",
    "write_model_card",
]


def write_model_card(
    out_dir: Path,
    *,
    name: str,
    version: int,
    run: dict[str, Any],
    labels: list[str],
    y_true: np.ndarray,
    float_scores: np.ndarray,
    variants: list[dict[str, Any]],
    predict_fn: Callable[[np.ndarray], np.ndarray],
    x_test: np.ndarray,
    feature_names: list[str] | None = None,
    explain_rows: ExplainRows | None = None,
    groups: dict[str, Any] | None = None,
    card_info: CardInfo | None = None,
) -> list[Path]:
    """Write ``out_dir/model_card.md``, ``out_dir/data-report.json`` and
    ``out_dir/charts/*.png``; return the paths written (the card first).

    ``run`` is the run.json of the training run (lineage, hyper-parameters, data report,
    ``warnings``). ``y_true``/``float_scores`` are the test labels and the float Keras
    model's test scores; ``x_test`` the matching model-domain inputs and ``predict_fn`` a
    function that scores a model-domain batch (for the explanation aid, so it may be the
    Keras model or any runtime). ``feature_names`` or 2-D inputs switch the explanation to
    permutation importance, measured on ``explain_rows`` (default: the test rows; the
    exporter passes :func:`importance_rows`); image inputs ``[n, H, W, C]`` get occlusion
    saliency on correct and misclassified test images.

    ``variants`` are rows of the variant table, one per target, with keys ``target``,
    ``runtime``, ``precision``, ``included`` (bool), ``reason`` (why left out, or ""),
    ``accuracy``, ``agreement`` (top-1 vs float, test split), ``size`` (bytes),
    ``latency_ms``, ``latency_p95_ms``, ``speedup_vs_fp32``; optional ``agreement_all`` and
    ``agreement_inputs`` (agreement on every gate input), ``gate`` (the gate's block, see
    docs/export.md) and ``scores`` (the variant's ``[n, classes]`` test scores: with them
    the variant gets its own accuracy, macro-F1, ECE and ROC-AUC with intervals). Missing
    values may be None. ``groups`` is report.json's ``groups`` block
    (cloud/export/fairness.py) and ``card_info`` the user's ``--card-info`` fields.
    """
    y_true = np.asarray(y_true)
    float_scores = np.asarray(float_scores)
    if float_scores.ndim != 2 or float_scores.shape[1] != len(labels):
        raise DataError(
            f"float scores have shape {float_scores.shape} but the model has {len(labels)} labels"
        )
    if len(x_test) != len(y_true) or len(y_true) != len(float_scores):
        raise DataError(
            f"x_test has {len(x_test)} samples, y_true {len(y_true)} and the float scores "
            f"{len(float_scores)}: they must be the same test rows"
        )
    out_dir = Path(out_dir)
    chart_dir = out_dir / CHARTS_DIR
    chart_dir.mkdir(parents=True, exist_ok=True)
    seed = int(run.get("seed") or 0)
    float_q = quality.measure(float_scores, y_true, seed)
    qualities = variant_sections.measure_variants(variants, y_true, float_scores, seed)
    written: list[Path] = []

    cm_png = charts.confusion_matrix_png(
        float_q.ev.confusion, labels, chart_dir / "confusion_matrix.png"
    )
    rel_png = charts.reliability_png(float_q.ev.calibration, chart_dir / "reliability.png")
    written += [cm_png, rel_png]
    var_png = var_rel_png = None
    if variants:
        intervals = {k: q.accuracy_ci for k, q in qualities.items()}
        measured = [  # the chart shows what the card's tables show: accuracy from the scores
            {**r, "accuracy": qualities[target_name(r)].accuracy}
            if target_name(r) in qualities
            else r
            for r in variants
        ]
        var_png = charts.variants_png(measured, chart_dir / "variants.png", intervals)
        written.append(var_png)
    if qualities:
        curves = {"float": float_q.ev.calibration}
        curves.update({k: q.ev.calibration for k, q in qualities.items()})
        var_rel_png = charts.variant_reliability_png(curves, chart_dir / "variant_reliability.png")
        written.append(var_rel_png)
    two_class, two_class_pngs = two_class_section(
        float_q, labels, y_true, float_scores, chart_dir, seed
    )
    written += two_class_pngs
    explanation, expl_pngs = _explanation(
        chart_dir,
        predict_fn,
        np.asarray(x_test),
        y_true,
        float_scores,
        labels,
        feature_names,
        explain_rows,
        seed,
    )
    written += expl_pngs
    report_json = overview.write_data_report(run, out_dir)
    if report_json is not None:
        written.append(report_json)

    header_rows = [
        *quality.headline_rows(float_q),
        *_shipped_rows(variants, qualities),
        *card_fields.card_info_header_rows(card_info),
    ]
    sections = [
        overview.header(name, version, run, len(labels), header_rows),
        card_fields.card_info_summary(card_info),
        overview.training_warnings(run),
        card_fields.intended_use_section(card_info, overview.intended_use(run, labels)),
        overview.lineage(run, y_true, labels, report_json.name if report_json else None),
        quality.performance(float_q, labels),
        two_class,
        quality.confusion(float_q.ev, labels, cm_png.name),
        quality.calibration(float_q, rel_png.name),
        card_fields.groups_section(groups),
        variant_sections.runtime_table(variants, qualities, var_png.name if var_png else None),
        variant_sections.quality_table(
            variants,
            qualities,
            float_q,
            float_scores,
            labels,
            var_rel_png.name if var_rel_png else None,
        ),
        variant_sections.gate_section(variants),
        variant_sections.quantisation(variants, float_q, float_scores, y_true),
        explanation,
        card_fields.citation_section(card_info),
    ]
    text = "\n\n".join(s.strip() for s in sections if s and s.strip()) + "\n"
    card = out_dir / CARD_NAME
    card.write_text(strip_paths(text), encoding="utf-8")
    return [card, *written]


def _shipped_rows(
    rows: list[dict[str, Any]], qualities: dict[str, quality.Quality]
) -> list[tuple[str, str]]:
    """One header row naming the variants a device may serve, with their accuracy."""
    shipped = [r for r in rows if r.get("included")]
    if not shipped:
        return []
    parts = []
    for r in shipped:
        q = qualities.get(target_name(r))
        acc = pct_ci(q.accuracy, q.accuracy_ci) if q else pct(r.get("accuracy"))
        parts.append(f"`{target_name(r)}` {acc}")
    return [("shipped variants (test accuracy)", "; ".join(parts))]


def _explanation(
    chart_dir: Path,
    predict_fn: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    float_scores: np.ndarray,
    labels: list[str],
    feature_names: list[str] | None,
    rows: ExplainRows | None,
    seed: int,
) -> tuple[str, list[Path]]:
    if feature_names is not None or x.ndim == 2:
        if x.ndim != 2:
            return (
                "## Explanation aid\n\nFeature names were given but the inputs have shape "
                f"{list(x.shape[1:])}; permutation importance needs feature vectors.",
                [],
            )
        rows = rows or ExplainRows(x=x, y=y, what=f"the {len(x)} test rows")
        return importance_section(predict_fn, rows, feature_names, chart_dir, seed)
    if x.ndim != 4:
        return (
            "## Explanation aid\n\nNo explanation aid for inputs of shape "
            f"{list(x.shape[1:])} (neither feature vectors nor images).",
            [],
        )
    pred = float_scores.argmax(axis=1)
    return saliency_section(predict_fn, x, y, pred, labels, chart_dir, seed)
