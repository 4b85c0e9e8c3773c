"""The card's opening sections: header, intended use, training warnings, data and lineage.

Everything shown comes from the training run's run.json. Paths of the build machine are
cut to their file name; the full data report goes into the bundle as ``data-report.json``
(whole, valid JSON) instead of being pasted, and cut, into the card.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cloud.data.report import feature_table, source_name
from cloud.export.card.text import scrub, table

DATA_REPORT_NAME = "data-report.json"
# Keys of the data report the card renders itself; any other key is only in the JSON file.
_RENDERED = {
    "source",
    "kind",
    "fingerprint",
    "samples",
    "classes",
    "samples_per_class",
    "splits",
    "split_sizes",
    "split_classes",
    "skipped",
    "features",
    "image",
}


def header(
    name: str, version: int, run: dict[str, Any], n_classes: int, rows: list[tuple[str, str]]
) -> str:
    base: list[tuple[str, Any]] = [
        ("name", name),
        ("version", version),
        ("task", f"{run.get('kind', 'unknown')} classification, {n_classes} classes"),
        ("architecture", run.get("arch", "n/a")),
        ("trained", run.get("created", "n/a")),
    ]
    return f"# Model card: {name} v{version}\n\n" + table(("", ""), [*base, *rows])


def intended_use(run: dict[str, Any], labels: list[str]) -> str:
    kind = run.get("kind", "unknown")
    src = source_name((run.get("dataset") or {}).get("source", "its training dataset"))
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


def training_warnings(run: dict[str, Any]) -> str:
    """The trainer's warnings (e.g. best epoch was the last), or "" when there are none."""
    raw = run.get("warnings") or []
    items = [raw] if isinstance(raw, (str, dict)) else list(raw) if isinstance(raw, list) else []
    lines = []
    for w in items:
        text = (w.get("message") or json.dumps(w)) if isinstance(w, dict) else str(w)
        if str(text).strip():
            lines.append(f"- {str(text).strip()}")
    if not lines:
        return ""
    return (
        "## Training warnings\n\nThe trainer flagged the run; read these before trusting the "
        "numbers below:\n\n" + "\n".join(lines)
    )


def _training_rows(run: dict[str, Any]) -> list[tuple[str, Any]]:
    m = run.get("metrics") or {}
    rows: list[tuple[str, Any]] = []
    if m.get("best_epoch") is not None:
        rows.append(
            ("best epoch / epochs run", f"{m['best_epoch']} / {m.get('epochs_run', 'n/a')}")
        )
    if m.get("val_accuracy") is not None:
        rows.append(("validation accuracy", f"{100 * float(m['val_accuracy']):.2f}%"))
    return rows


def _class_table(report: dict[str, Any], y_true: np.ndarray, labels: list[str]) -> str:
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
    return table(head, class_rows)


def _inputs(report: dict[str, Any]) -> str:
    feats = report.get("features")
    if isinstance(feats, list) and feats and all(isinstance(f, dict) for f in feats):
        try:
            lines = feature_table(feats, more=f"see {DATA_REPORT_NAME}")
        except (KeyError, TypeError, ValueError):
            return ""
        return "\n\nFeature value ranges (all samples, before standardisation):\n\n" + "\n".join(
            lines
        )
    img = report.get("image")
    if isinstance(img, dict):
        return (
            f"\n\nImages: {img.get('height')}x{img.get('width')}x{img.get('channels')} "
            f"{img.get('color', '')}, raw value range {img.get('raw_range')}."
        )
    return ""


def lineage(
    run: dict[str, Any], y_true: np.ndarray, labels: list[str], report_file: str | None
) -> str:
    ds = run.get("dataset") or {}
    report = ds.get("report") or {}
    rows: list[tuple[str, Any]] = [
        ("source", f"`{source_name(ds.get('source', 'n/a'))}`"),
        ("fingerprint", f"`{ds.get('fingerprint', 'n/a')}`"),
        ("seed", run.get("seed", "n/a")),
        ("code version", f"`{run.get('code_version', 'n/a')}`"),
        ("samples", report.get("samples", "n/a")),
        ("test samples evaluated", len(y_true)),
    ]
    splits = report.get("splits") or report.get("split_sizes")
    if isinstance(splits, dict):
        rows.append(("split sizes", ", ".join(f"{k}: {v}" for k, v in splits.items())))
    skipped = report.get("skipped")
    if isinstance(skipped, dict) and skipped.get("count"):
        rows.append(("unreadable inputs skipped", skipped["count"]))
    rows += _training_rows(run)
    hp = scrub(run.get("hyperparameters") or {})
    hp_rows = [(k, json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in hp.items()]
    text = "## Data and lineage\n\n" + table(("", ""), rows)
    text += dataset_versions(ds.get("versions"))
    if hp_rows:
        text += "\n\nHyper-parameters:\n\n" + table(("parameter", "value"), hp_rows)
    text += "\n\nSamples per class:\n\n" + _class_table(report, y_true, labels)
    text += _inputs(report)
    if report_file:
        extra = sorted(k for k in report if k not in _RENDERED)
        more = f" (also: {', '.join(extra)})" if extra else ""
        text += (
            f"\n\nThe full data report{more} is in the bundle as [`{report_file}`]({report_file})."
        )
    return text


def dataset_versions(versions: Any) -> str:
    """The dataset versions trained on (original and field, from ``edgekit hub dataset
    export``) and how many samples came from which devices; "" for a plain dataset."""
    if not isinstance(versions, list) or not any(
        isinstance(v, dict) and v.get("role") == "field" for v in versions
    ):
        return ""
    rows: list[tuple[Any, ...]] = []
    for v in versions:
        if not isinstance(v, dict):
            continue
        name = (
            v.get("source")
            if v.get("role") == "original"
            else f"{v.get('name')}@{v.get('version')}"
        )
        devices = v.get("by_device") or {}
        shown = ", ".join(f"{d} {n}" for d, n in sorted(devices.items(), key=lambda i: -i[1])[:8])
        more = f", ... ({len(devices)} devices)" if len(devices) > 8 else ""
        rows.append((
            v.get("role"), f"`{source_name(str(name))}`", f"`{v.get('fingerprint', 'n/a')}`",
            v.get("samples", "n/a"), (shown + more) or "—",
        ))  # fmt: skip
    return "\n\nDataset versions:\n\n" + table(
        ("role", "dataset", "fingerprint", "samples", "samples by device"), rows
    )


def write_data_report(run: dict[str, Any], out_dir: Path) -> Path | None:
    """``out_dir/data-report.json``: the training run's data report, whole and valid, with
    build-machine paths cut to file names; None when the run has no report."""
    ds = run.get("dataset") or {}
    report = ds.get("report")
    if not isinstance(report, dict) or not report:
        return None
    doc = scrub({**report, "source": source_name(report.get("source", ds.get("source", "")))})
    path = out_dir / DATA_REPORT_NAME
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")
    return path
