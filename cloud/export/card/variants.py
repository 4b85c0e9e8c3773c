"""The card's variant sections: what each runtime variant costs, how good it is, why the
gate kept or left it out, and how quantisation changed its answers.

A device serves one of these variants, not the float Keras model, so each evaluated
variant gets the float model's headline numbers (accuracy and macro-F1 with intervals,
ECE, ROC-AUC for two classes) from its own test scores. The gate block is written by
``cloud.export.gate`` into each row; it is rendered when present.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cloud.export.card.quality import Quality, measure
from cloud.export.card.text import (
    interval,
    num,
    num_ci,
    pct,
    pct_ci,
    size,
    strip_paths,
    table,
    target_name,
)
from cloud.export.metrics import disagreements
from cloud.export.stats import paired_difference_interval


def has_scores(row: dict[str, Any], float_scores: np.ndarray) -> bool:
    scores = row.get("scores")
    return scores is not None and np.shape(scores) == float_scores.shape


def measure_variants(
    rows: list[dict[str, Any]], y_true: np.ndarray, float_scores: np.ndarray, seed: int
) -> dict[str, Quality]:
    """Target -> quality for every row that carries test scores of the right shape."""
    return {
        target_name(r): measure(np.asarray(r["scores"]), y_true, seed)
        for r in rows
        if has_scores(r, float_scores)
    }


def runtime_table(
    rows: list[dict[str, Any]], qualities: dict[str, Quality], png: str | None
) -> str:
    if not rows:
        return "## Runtime variants\n\nNo variants were exported."
    lines = []
    for v in rows:
        name = target_name(v)
        q = qualities.get(name)
        acc = pct_ci(q.accuracy, q.accuracy_ci) if q else pct(v.get("accuracy"))
        all_inputs = v.get("agreement_all")
        recipe = f" (recipe `{v['recipe']}`)" if v.get("recipe") else ""
        lines.append(
            (
                f"`{name}`{recipe}",
                "yes" if v.get("included") else "**no**",
                size(v.get("size")),
                acc,
                pct(v.get("agreement")),
                "n/a"
                if all_inputs is None
                else f"{pct(all_inputs)} of {v.get('agreement_inputs')}",
                num(v.get("latency_ms"), ".3f"),
                num(v.get("latency_p95_ms"), ".3f"),
                "n/a" if v.get("speedup_vs_fp32") is None else f"{v['speedup_vs_fp32']:.2f}x",
            )
        )
    head = (
        "target",
        "in bundle",
        "size",
        "test accuracy [95% interval]",
        "agreement (test)",
        "agreement (all inputs)",
        "p50 ms",
        "p95 ms",
        "speed-up vs fp32",
    )
    text = (
        "## Runtime variants\n\nEach variant was evaluated with its real runtime on the export "
        "machine. Agreement = share of inputs where the variant picks the same class as the "
        "float Keras model (on the test split, and on every train, validation and test input "
        "the gate used). Speed-up = fp32 median latency of the same runtime / this variant's "
        "(above 1 = faster). An int8 recipe is the quantisation form the exporter kept as "
        "the fastest within the gate among those it tried.\n\n" + table(head, lines)
    )
    left_out = [v for v in rows if not v.get("included")]
    if left_out:
        text += "\n\nLeft out of the bundle:\n\n" + "\n".join(
            f"- `{target_name(v)}`: "
            + strip_paths(
                str(
                    (v.get("gate") or {}).get("reason")
                    or v.get("reason")
                    or v.get("error")
                    or "no reason recorded"
                )
            )
            for v in left_out
        )
    if png:
        text += f"\n\n![variants](charts/{png})"
    return text


def quality_table(
    rows: list[dict[str, Any]],
    qualities: dict[str, Quality],
    float_q: Quality,
    float_scores: np.ndarray,
    labels: list[str],
    png: str | None,
) -> str:
    head = "## Quality of each variant\n\n"
    measured = [r for r in rows if target_name(r) in qualities]
    if not measured:
        return head + "No variant has test scores to evaluate."
    binary = float_q.auc is not None
    n = len(float_scores)
    body = []
    for r in [None, *measured]:
        name = "float (Keras)" if r is None else target_name(r)
        q = float_q if r is None else qualities[name]
        c = q.ev.classes
        worst = int(np.argmin(c.f1))
        if r is None:
            n_dis, shipped = "-", "reference"
        else:
            n_dis = f"{len(disagreements(np.asarray(r['scores']), float_scores))} / {n}"
            shipped = "yes" if r.get("included") else "no"
        cells = [
            f"`{name}`" if r is not None else name,
            shipped,
            pct_ci(q.accuracy, q.accuracy_ci),
            num_ci(q.macro_f1, q.macro_f1_ci),
            num(q.ev.ece, ".3f"),
        ]
        if binary:
            cells.append(num_ci(q.auc, q.auc_ci))
        cells += [n_dis, f"`{labels[worst]}` ({c.f1[worst]:.3f})"]
        body.append(cells)
    cols = ["variant", "in bundle", "accuracy", "macro F1", "ECE"]
    if binary:
        cols.append("ROC-AUC")
    cols += ["disagreements with float", "weakest class (F1)"]
    text = (
        head + "The numbers a device sees: each variant's own test scores, with 95 % intervals "
        "(accuracy: Wilson; macro F1, ROC-AUC: bootstrap). Overlapping intervals mean the "
        "test split cannot tell the variants apart; the disagreement count says how many "
        "answers actually changed.\n\n" + table(cols, body)
    )
    if png:
        text += f"\n\n![reliability per variant](charts/{png})"
    return text


def _check_value(check: dict[str, Any]) -> tuple[str, str, str]:
    """(value, interval, limit) of one gate check, formatted by its unit."""
    value, ci, limit = check.get("value"), check.get("interval"), check.get("limit")
    if check.get("unit") == "points":
        v = "n/a" if value is None else f"{float(value):+.2f} pt"
        lim = "n/a" if limit is None else f"at most {float(limit):g} pt"
        return v, interval(ci, percent=False, digits=2) if ci else "", lim
    v = pct(value)
    if check.get("class") is not None:
        v = f"`{check['class']}`: {v}"
    lim = "n/a" if limit is None else f"at least {pct(limit, 0)}"
    return v, interval(ci) if ci else "", lim


def gate_section(rows: list[dict[str, Any]]) -> str:
    """Per variant and check: value, interval, sample count, limit, verdict; "" when no row
    carries a gate block (older exports)."""
    gated = [r for r in rows if isinstance(r.get("gate"), dict)]
    if not gated:
        return ""
    body = []
    notes = []
    confidence = None
    for r in gated:
        gate = r["gate"]
        confidence = confidence or gate.get("confidence")
        checks = gate.get("checks") or {}
        decision = str(gate.get("decision") or ("kept" if r.get("included") else "left out"))
        if not isinstance(checks, dict) or not checks:
            why = strip_paths(str(gate.get("reason") or r.get("reason") or "not evaluated"))
            notes.append(f"- `{target_name(r)}`: {decision}: {why}")
            continue
        for key, check in checks.items():
            if not isinstance(check, dict):
                continue
            value, ci, limit = _check_value(check)
            passed = check.get("passed")
            body.append(
                (
                    f"`{target_name(r)}`",
                    key.replace("_", " "),
                    value,
                    ci,
                    check.get("n", "n/a"),
                    limit,
                    "pass" if passed else "**fail**" if passed is False else "n/a",
                    decision,
                )
            )
    level = f"{100 * float(confidence):g} %" if confidence else "95 %"
    text = (
        "## Gate decisions\n\nWhy each variant was kept or left out. A check fails only when "
        f"its {level} interval lies entirely on the wrong side of the limit, so a variant is "
        "not dropped for one changed answer on a small test split, and is dropped when it "
        "changes many answers even if its accuracy holds. Accuracy drop is measured on the "
        "labelled test split in percentage points (pt; positive = worse than float); "
        "agreement on every input the gate used (labels not needed).\n\n"
    )
    if body:
        text += table(
            ("variant", "check", "value", "interval", "n", "limit", "verdict", "decision"), body
        )
    if notes:
        text += ("\n\n" if body else "") + "\n".join(notes)
    return text


def quantisation(
    rows: list[dict[str, Any]], float_q: Quality, float_scores: np.ndarray, y_true: np.ndarray
) -> str:
    int8 = [v for v in rows if v.get("precision") == "int8"]
    head = "## How quantisation changed the model\n\n"
    if not int8:
        return head + "No int8 variant was exported."
    n = len(float_scores)
    float_right = float_scores.argmax(axis=1) == y_true
    body = []
    for v in int8:
        acc = v.get("accuracy")
        drop_ci = ""
        if has_scores(v, float_scores):
            scores = np.asarray(v["scores"])
            n_dis = str(len(disagreements(scores, float_scores)))
            agree: float | None = 1.0 - int(n_dis) / n
            var_right = scores.argmax(axis=1) == y_true
            acc = float(var_right.mean())
            b = int(np.sum(float_right & ~var_right))
            c = int(np.sum(~float_right & var_right))
            drop_ci = interval(paired_difference_interval(b, c, n), digits=2)
        else:
            agree = v.get("agreement")
            n_dis = "n/a" if agree is None else str(round((1.0 - float(agree)) * n))
        drop = None if acc is None else round(100.0 * (float_q.accuracy - float(acc)), 2) + 0.0
        body.append(
            (
                f"`{target_name(v)}`",
                pct(acc),
                "n/a" if drop is None else f"{drop:+.2f} {drop_ci}".strip(),
                pct(agree),
                "n/a" if n_dis == "n/a" else f"{n_dis} / {n}",
                "yes" if v.get("included") else "no",
            )
        )
    return (
        head + f"Float model accuracy: {pct(float_q.accuracy)}. Accuracy drop is in points "
        "(positive = int8 is worse) with its 95 % paired interval (Tango's score interval "
        "on the test rows where exactly one of the two is right); disagreements count test "
        "samples whose top-1 class differs from the float model's, which can be non-zero "
        "even when accuracy is unchanged.\n\n"
        + table(
            (
                "variant",
                "accuracy",
                "drop (points) [95% interval]",
                "agreement",
                "disagreements",
                "in bundle",
            ),
            body,
        )
    )
