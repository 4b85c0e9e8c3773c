"""The model card: one markdown file plus charts that travel inside every bundle.

The exporter calls :func:`write_model_card` once it has evaluated every variant; the card
answers what a reviewer asks before shipping a model to a fleet: what data and code made it,
how good it is per class, whether its confidences can be trusted, what each runtime variant
costs and loses, and what the model looks at.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cloud.export import charts, explain
from cloud.export.metrics import Evaluation, disagreements, evaluate, top1_agreement
from edge.errors import DataError

CARD_NAME = "model_card.md"
CHARTS_DIR = "charts"
ECE_BINS = 15
SALIENCY_PER_CLASS = 1
SALIENCY_MAX_IMAGES = 12
IMPORTANCE_MAX_SAMPLES = 2000


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
) -> list[Path]:
    """Write ``out_dir/model_card.md`` and ``out_dir/charts/*.png``; return the paths written.

    ``run`` is the run.json of the training run (lineage, hyper-parameters, dataset report).
    ``y_true``/``float_scores`` are the test labels and the float Keras model's scores on the
    test split; ``x_test`` the matching model-domain inputs and ``predict_fn`` a function
    that scores a model-domain batch (used for the explanation aid, so it may be the Keras
    model or any runtime). ``feature_names`` switches the explanation to permutation feature
    importance (tabular); without it, image inputs ``[n, H, W, C]`` get occlusion saliency.

    ``variants`` are rows of the variant table, one per target, with keys ``target``,
    ``runtime``, ``precision``, ``included`` (bool), ``reason`` (why left out, or ""),
    ``accuracy``, ``agreement`` (top-1 vs float), ``size`` (bytes), ``latency_ms``,
    ``latency_p95_ms``, ``speedup_vs_fp32``; missing values may be None. A row may also
    carry ``scores`` (its ``[n, classes]`` test scores) so disagreements are counted exactly.
    Paths are returned relative-ready: the card links charts as ``charts/<file>.png``.
    """
    y_true = np.asarray(y_true)
    float_scores = np.asarray(float_scores)
    if float_scores.ndim != 2 or float_scores.shape[1] != len(labels):
        raise DataError(
            f"float scores have shape {float_scores.shape} but the model has {len(labels)} labels"
        )
    if len(x_test) != len(y_true):
        raise DataError(f"x_test has {len(x_test)} samples but y_true has {len(y_true)}")
    out_dir = Path(out_dir)
    chart_dir = out_dir / CHARTS_DIR
    chart_dir.mkdir(parents=True, exist_ok=True)
    ev = evaluate(float_scores, y_true, ECE_BINS)
    written: list[Path] = []

    cm_png = charts.confusion_matrix_png(ev.confusion, labels, chart_dir / "confusion_matrix.png")
    rel_png = charts.reliability_png(ev.calibration, chart_dir / "reliability.png")
    written += [cm_png, rel_png]
    var_png = None
    if variants:
        var_png = charts.variants_png(variants, chart_dir / "variants.png")
        written.append(var_png)

    explanation, expl_pngs = _explanation(
        chart_dir, predict_fn, np.asarray(x_test), y_true, labels, feature_names, run
    )
    written += expl_pngs

    sections = [
        _header(name, version, run, ev, len(labels)),
        _intended_use(run, labels),
        _lineage(run, y_true, labels),
        _performance(ev, labels),
        _confusion(ev, labels, cm_png.name),
        _calibration(ev, rel_png.name),
        _variants(variants, var_png.name if var_png else None),
        _quantisation(variants, ev, float_scores),
        explanation,
    ]
    card = out_dir / CARD_NAME
    card.write_text("\n\n".join(s.strip() for s in sections) + "\n", encoding="utf-8")
    return [card, *written]


# --------------------------------------------------------------------------- sections


def _pct(v: Any, digits: int = 2) -> str:
    return "n/a" if v is None else f"{100.0 * float(v):.{digits}f}%"


def _num(v: Any, fmt: str = ".3g") -> str:
    return "n/a" if v is None else format(float(v), fmt)


def _size(v: Any) -> str:
    if v is None:
        return "n/a"
    n = float(v)
    return f"{n / 1024:.1f} KiB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.2f} MiB"


def _cell(v: Any) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _header(name: str, version: int, run: dict[str, Any], ev: Evaluation, n: int) -> str:
    rows = [
        ("name", name),
        ("version", version),
        ("task", f"{run.get('kind', 'unknown')} classification, {n} classes"),
        ("architecture", run.get("arch", "n/a")),
        ("trained", run.get("created", "n/a")),
        ("test accuracy (float model)", _pct(ev.accuracy)),
        ("macro F1", _num(ev.classes.macro_f1(), ".3f")),
        ("expected calibration error", _num(ev.ece, ".3f")),
    ]
    return f"# Model card: {name} v{version}\n\n" + _table(("", ""), rows)


def _intended_use(run: dict[str, Any], labels: list[str]) -> str:
    kind = run.get("kind", "unknown")
    src = (run.get("dataset") or {}).get("source", "its training dataset")
    shown = ", ".join(labels[:12]) + (", ..." if len(labels) > 12 else "")
    what = (
        "images preprocessed exactly as the manifest's `preprocessing` block says"
        if kind == "image"
        else "feature vectors in the manifest's feature order, standardised as it says"
    )
    return f"""## Intended use and limitations

Classifies {what}
into one of: {shown}. It is meant for on-device inference with the edgekit agent,
which checks every input against the manifest and monitors drift.

- It only knows the classes above: any other input is still forced into one of them,
  with a confidence that means nothing. Watch the drift alerts.
- Its quality was measured on a held-out split of `{src}`; inputs from another sensor,
  camera, population or time may score lower. Measure on your own data before relying on it.
- Confidences are calibrated only as well as the calibration section below shows.
- Not for decisions about people without human review."""


def _lineage(run: dict[str, Any], y_true: np.ndarray, labels: list[str]) -> str:
    ds = run.get("dataset") or {}
    report = ds.get("report") or {}
    rows: list[tuple[str, Any]] = [
        ("source", ds.get("source", "n/a")),
        ("fingerprint", f"`{ds.get('fingerprint', 'n/a')}`"),
        ("seed", run.get("seed", "n/a")),
        ("code version", f"`{run.get('code_version', 'n/a')}`"),
        ("samples", report.get("samples", "n/a")),
        ("test samples evaluated", len(y_true)),
    ]
    splits = report.get("splits") or report.get("split_sizes")
    if isinstance(splits, dict):
        rows.append(("split sizes", ", ".join(f"{k}: {v}" for k, v in splits.items())))
    hp = run.get("hyperparameters") or {}
    hp_rows = [(k, json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in hp.items()]
    test_counts = np.bincount(np.asarray(y_true, dtype=np.int64), minlength=len(labels))
    head = ["class"]
    class_rows: list[list[Any]] = [[lbl] for lbl in labels]
    per_class = report.get("classes") or report.get("samples_per_class")
    if isinstance(per_class, dict):
        head.append("all samples")
        for r in class_rows:
            r.append(per_class.get(r[0], "n/a"))
    per_split = report.get("split_classes")
    if isinstance(per_split, dict):
        for split_name in ("train", "val"):
            counts = per_split.get(split_name)
            if isinstance(counts, dict):
                head.append(split_name)
                for r in class_rows:
                    r.append(counts.get(r[0], "n/a"))
    head.append("test (evaluated)")
    for i, r in enumerate(class_rows):
        r.append(int(test_counts[i]))
    text = "## Data and lineage\n\n" + _table(("", ""), rows)
    if hp_rows:
        text += "\n\nHyper-parameters:\n\n" + _table(("parameter", "value"), hp_rows)
    text += "\n\nSamples per class:\n\n" + _table(head, class_rows)
    shown = {
        "source",
        "kind",
        "fingerprint",
        "samples",
        "classes",
        "samples_per_class",
        "splits",
        "split_sizes",
        "split_classes",
    }
    extra = {k: v for k, v in report.items() if k not in shown}
    if extra:
        dump = json.dumps(extra, indent=1, default=str)
        text += "\n\nData report:\n\n```json\n" + dump[:4000] + "\n```"
    return text


def _performance(ev: Evaluation, labels: list[str]) -> str:
    c = ev.classes
    rows = [
        (lbl, f"{c.precision[i]:.3f}", f"{c.recall[i]:.3f}", f"{c.f1[i]:.3f}", int(c.support[i]))
        for i, lbl in enumerate(labels)
    ]
    worst = int(np.argmin(c.f1))
    return (
        f"## Performance (float model, test split)\n\nAccuracy **{_pct(ev.accuracy)}**, "
        f"macro F1 {c.macro_f1():.3f}, weighted F1 {c.weighted_f1():.3f}. "
        f"Weakest class: `{labels[worst]}` (F1 {c.f1[worst]:.3f}).\n\n"
        + _table(("class", "precision", "recall", "F1", "support"), rows)
    )


def _confusion(ev: Evaluation, labels: list[str], png: str) -> str:
    cm = ev.confusion
    text = "## Confusion matrix\n\nRows are the true class, columns the predicted one.\n\n"
    if len(labels) <= 20:
        rows = [[f"**{lbl}**", *(int(v) for v in cm[i])] for i, lbl in enumerate(labels)]
        text += _table(["true \\ predicted", *labels], rows) + "\n\n"
    off = cm.copy()
    np.fill_diagonal(off, 0)
    if off.sum():
        i, j = np.unravel_index(int(off.argmax()), off.shape)
        text += (
            f"Most frequent confusion: `{labels[i]}` taken for `{labels[j]}` "
            f"({int(off[i, j])} times).\n\n"
        )
    return text + f"![confusion matrix]({CHARTS_DIR}/{png})"


def _calibration(ev: Evaluation, png: str) -> str:
    rel = ev.calibration
    filled = rel.counts > 0
    mean_conf = float((rel.confidence[filled] * rel.counts[filled]).sum() / rel.counts.sum())
    gap = mean_conf - ev.accuracy
    tendency = (
        "over-confident"
        if gap > 0.01
        else "under-confident"
        if gap < -0.01
        else "well matched to its accuracy on average"
    )
    return (
        f"## Calibration\n\nExpected calibration error (ECE, {len(rel.counts)} equal-width bins "
        f"of top-1 confidence): **{ev.ece:.4f}** (0 = confidences equal accuracy). Mean "
        f"confidence {mean_conf:.3f} vs accuracy {ev.accuracy:.3f}: the model is {tendency}. "
        f'Thresholds on the score (e.g. "act only above 0.9") are only as trustworthy as '
        f"this diagram.\n\n![reliability diagram]({CHARTS_DIR}/{png})"
    )


def _variants(variants: list[dict[str, Any]], png: str | None) -> str:
    if not variants:
        return "## Runtime variants\n\nNo variants were exported."
    rows = []
    for v in variants:
        target = v.get("target") or f"{v.get('runtime')}-{v.get('precision')}"
        rows.append(
            (
                f"`{target}`",
                "yes" if v.get("included") else "**no**",
                _size(v.get("size")),
                _pct(v.get("accuracy")),
                _pct(v.get("agreement")),
                _num(v.get("latency_ms"), ".3f"),
                _num(v.get("latency_p95_ms"), ".3f"),
                "n/a" if v.get("speedup_vs_fp32") is None else f"{v['speedup_vs_fp32']:.2f}x",
            )
        )
    text = (
        "## Runtime variants\n\nEach variant was evaluated with its real runtime on the test "
        "split on the export machine. Agreement = share of test samples where the variant "
        "picks the same class as the float Keras model. Speed-up = fp32 median latency of "
        "the same runtime / this variant's (above 1 = faster).\n\n"
        + _table(
            (
                "target",
                "in bundle",
                "size",
                "accuracy",
                "agreement",
                "p50 ms",
                "p95 ms",
                "speed-up vs fp32",
            ),
            rows,
        )
    )
    left_out = [v for v in variants if not v.get("included")]
    if left_out:
        text += "\n\nLeft out of the bundle:\n\n" + "\n".join(
            f"- `{v.get('target') or v.get('runtime', '?') + '-' + v.get('precision', '?')}`: "
            f"{v.get('reason') or v.get('error') or 'no reason recorded'}"
            for v in left_out
        )
    if png:
        text += f"\n\n![variants]({CHARTS_DIR}/{png})"
    return text


def _quantisation(variants: list[dict[str, Any]], ev: Evaluation, float_scores: np.ndarray) -> str:
    int8 = [v for v in variants if v.get("precision") == "int8"]
    head = "## How quantisation changed the model\n\n"
    if not int8:
        return head + "No int8 variant was exported."
    n = len(float_scores)
    rows = []
    for v in int8:
        scores = v.get("scores")
        agree: float | None
        if scores is not None and np.shape(scores) == float_scores.shape:
            agree = top1_agreement(scores, float_scores)
            n_dis = str(len(disagreements(scores, float_scores)))
        else:
            agree = v.get("agreement")
            n_dis = "n/a" if agree is None else str(round((1.0 - float(agree)) * n))
        acc = v.get("accuracy")
        drop = None if acc is None else round(100.0 * (ev.accuracy - float(acc)), 2) + 0.0
        rows.append(
            (
                f"`{v.get('target') or v.get('runtime', '?') + '-int8'}`",
                _pct(acc),
                "n/a" if drop is None else f"{drop:+.2f}",
                _pct(agree),
                f"{n_dis} / {n}",
                "yes" if v.get("included") else "no",
            )
        )
    return (
        head + f"Float model accuracy: {_pct(ev.accuracy)}. Accuracy drop is in points (positive = "
        "int8 is worse); disagreements count test samples whose top-1 class differs from the "
        "float model's, which can be non-zero even when accuracy is unchanged.\n\n"
        + _table(
            ("variant", "accuracy", "drop (points)", "agreement", "disagreements", "in bundle"),
            rows,
        )
    )


def _explanation(
    chart_dir: Path,
    predict_fn: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    labels: list[str],
    feature_names: list[str] | None,
    run: dict[str, Any],
) -> tuple[str, list[Path]]:
    seed = int(run.get("seed") or 0)
    if feature_names is not None or x.ndim == 2:
        if len(x) > IMPORTANCE_MAX_SAMPLES:
            idx = np.random.default_rng(seed).choice(len(x), IMPORTANCE_MAX_SAMPLES, replace=False)
            x, y = x[idx], y[idx]
        names = feature_names or [f"f{i}" for i in range(x.shape[1])]
        fi = explain.permutation_importance(predict_fn, x, y, feature_names=names, seed=seed)
        png = charts.feature_importance_png(
            fi.names, fi.mean, fi.std, chart_dir / "feature_importance.png"
        )
        ranked = fi.ranked()
        rows = [(f"`{n}`", f"{100 * m:+.2f}", f"{100 * s:.2f}") for n, m, s in ranked[:15]]
        ignored = [n for n, m, sd in ranked if abs(m) < 1e-9 and sd < 1e-9]
        text = (
            "## Explanation aid: permutation feature importance\n\nHow many accuracy points "
            f"the model loses on {len(x)} test samples when one feature is shuffled (mean "
            f"and std over 5 shuffles; baseline {_pct(fi.baseline_accuracy)}). Large = the "
            "model relies on it; about 0 = it ignores it; negative = noise. Correlated features "
            "share the credit: shuffling one leaves its twins to carry the information, so a "
            "small drop does not prove a feature useless.\n\n"
            + _table(("feature", "accuracy drop (points)", "std"), rows)
        )
        if ignored:
            text += f"\n\nFeatures with no measurable effect: {', '.join(ignored[:20])}."
        return text + f"\n\n![feature importance]({CHARTS_DIR}/{png.name})", [png]
    if x.ndim != 4:
        return (
            "## Explanation aid\n\nNo explanation aid for inputs of shape "
            f"{list(x.shape[1:])} (neither feature vectors nor images).",
            [],
        )
    idx = explain.pick_examples(y, SALIENCY_PER_CLASS, SALIENCY_MAX_IMAGES, seed)
    images = x[idx]
    maps = explain.occlusion_saliency(predict_fn, images)
    pred = np.asarray(predict_fn(images)).argmax(axis=1)
    titles = [f"true {labels[y[i]]} / pred {labels[p]}" for i, p in zip(idx, pred, strict=True)]
    png = charts.saliency_grid_png(images, maps, titles, chart_dir / "saliency.png")
    h, w = images.shape[1:3]
    text = (
        "## Explanation aid: occlusion saliency\n\nFor one test image per class (up to "
        f"{SALIENCY_MAX_IMAGES}), a square patch of about a quarter of the {h}x{w} input was "
        "slid over the image and replaced by the image's mean; red marks regions whose hiding "
        "lowers the predicted class's score (the evidence the model uses), blue regions whose "
        "hiding raises it. Saliency that sits on the background rather than the object is a "
        f"warning sign of a shortcut.\n\n![occlusion saliency]({CHARTS_DIR}/{png.name})"
    )
    return text, [png]
