"""Baselines benchmark: is edgekit's model as good as what a data scientist would fit first?

For wine, iris, breast cancer (string labels) and a 20-feature synthetic set
(cloud/bench/tabular_sets.py), each table is written to a CSV, trained with the real
``edgekit train`` pipeline at its defaults and exported with the real ``edgekit export``
pipeline (every fp32 and int8 target, default gate). On EXACTLY the rows of edgekit's
split (data.npz records each split's row indices) it then fits LogisticRegression (after
StandardScaler) and HistGradientBoosting on the training rows and scores all three on the
test rows, each accuracy with its 95 % Wilson interval, plus the paired interval of
edgekit minus LogisticRegression (only rows where the two disagree carry information).
Each int8 variant's agreement with the float model comes from the export report.

``run(ctx)`` plugs into ``edgekit bench``; ``python -m cloud.bench.baselines --out DIR``
runs it alone (``--json`` prints the result as JSON instead of the table).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from cloud.bench.tabular_sets import TABLES, Table, load_tables
from cloud.bench.train_export import Log
from cloud.export import TARGETS
from edge.errors import EdgekitError

INT8_TARGETS = tuple(t for t in TARGETS if t.endswith("-int8"))
QUICK_SYNTHETIC_ROWS = 1000
COLUMNS = [
    "dataset",
    "test rows",
    "edgekit acc % [95% CI]",
    "LogReg acc % [95% CI]",
    "HistGB acc % [95% CI]",
    "edgekit - LogReg pts [95% CI]",
    "best epoch / run (max)",
    *[f"{t} agree % [95% CI]" for t in INT8_TARGETS],
    "left out by the gate",
]


def accuracy(pred: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Accuracy with its count and 95 % Wilson interval (a proportion of n test rows)."""
    from cloud.export.stats import wilson_interval

    correct, n = int(np.sum(pred == y)), len(y)
    low, high = wilson_interval(correct, n)
    return {"accuracy": correct / n, "correct": correct, "n": n, "ci95": [low, high]}


def paired_difference(a: np.ndarray, b: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """Accuracy of ``a`` minus ``b`` on the same rows, with Tango's paired 95 % interval."""
    from cloud.export.stats import paired_difference_interval

    a_ok, b_ok = a == y, b == y
    only_a, only_b = int(np.sum(a_ok & ~b_ok)), int(np.sum(~a_ok & b_ok))
    low, high = paired_difference_interval(only_a, only_b, len(y))
    return {
        "difference": (only_a - only_b) / len(y),
        "only_first_right": only_a,
        "only_second_right": only_b,
        "ci95": [low, high],
    }


def read_split(run_dir: Path) -> dict[str, np.ndarray]:
    """The run's split: ``index_<part>`` rows of the source table and ``y_<part>`` labels."""
    with np.load(run_dir / "data.npz", allow_pickle=False) as npz:
        missing = [f"index_{p}" for p in ("train", "test") if f"index_{p}" not in npz.files]
        if missing:
            raise EdgekitError(f"{run_dir}/data.npz has no {', '.join(missing)}: retrain it")
        return {k: npz[k] for k in npz.files}


def check_same_rows(table: Table, run: dict[str, Any], split: dict[str, np.ndarray]) -> None:
    """Refuse to compare unless the recorded indices really select edgekit's rows: the
    labels must match and the raw rows, preprocessed, must be the model's inputs."""
    from cloud.data.preprocess import apply_preprocessing

    labels = np.asarray(run["labels"])
    for part in ("train", "val", "test"):
        idx = split[f"index_{part}"]
        if not np.array_equal(labels[split[f"y_{part}"]], np.asarray(table.labels)[idx]):
            raise EdgekitError(f"{table.name}: the {part} labels do not match the CSV rows")
        x = apply_preprocessing(run["preprocessing"], table.x[idx])
        if not np.allclose(x, split[f"x_{part}"], atol=1e-4):
            raise EdgekitError(f"{table.name}: the {part} rows do not match the CSV rows")


def fit_baselines(table: Table, split: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Test-row predictions of the two baselines, fitted on the training rows only
    (the rows edgekit's weights were fitted on; its validation rows only chose the epoch)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, y_train = table.x[split["index_train"]], split["y_train"]
    x_test = table.x[split["index_test"]]
    models = {
        "logreg": make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        "histgb": HistGradientBoostingClassifier(random_state=0),
    }
    return {name: np.asarray(m.fit(x_train, y_train).predict(x_test)) for name, m in models.items()}


def agreement(variant: dict[str, Any]) -> dict[str, Any] | None:
    """A variant's agreement with the float model on every input the export measured
    (train, validation and test), with its 95 % Wilson interval; None if not measured."""
    from cloud.export.stats import wilson_interval

    share, n = variant.get("agreement_all"), variant.get("agreement_inputs")
    if share is None or not n:  # an exporter without the all-inputs measure: test rows only
        return None
    agreed = round(float(share) * int(n))
    low, high = wilson_interval(agreed, int(n))
    return {
        "agreement": agreed / int(n),
        "agreed": agreed,
        "n": int(n),
        "ci95": [low, high],
        "test_agreement": variant.get("agreement"),
        "included": bool(variant.get("included")),
        "reason": variant.get("reason"),
    }


def _export(run_dir: Path, work: Path, name: str, key: Path, log: Log) -> dict[str, Any]:
    """The export report; when no variant passes the gate, the report saved beside it."""
    from cloud.errors import NoVariantError
    from cloud.export.pipeline import ExportOptions, export

    out = work / f"{name}.ekb"
    opts = ExportOptions(run_dir=run_dir, out=out, name=name, version=1, key=key)
    try:
        return export(opts, progress=lambda m: log(f"{name}: {m.strip()}")).report
    except NoVariantError as exc:
        log(f"{name}: {exc}")
        saved = out.with_name(out.name + ".report.json")
        report: dict[str, Any] = json.loads(saved.read_text(encoding="utf-8"))
        return report


def bench_table(table: Table, work: Path, key: Path, log: Log) -> dict[str, Any]:
    """Train, export and compare one table; a JSON-ready result row."""
    import keras

    from cloud.train.pipeline import TrainOptions, run_training

    work.mkdir(parents=True, exist_ok=True)
    csv = table.write_csv(work / f"{table.name}.csv")
    run_dir = work / "run"
    rows, features = table.x.shape
    log(f"{table.name}: edgekit train {csv.name} ({rows} rows, {features} features) ...")
    run = run_training(TrainOptions(dataset=str(csv), out=run_dir, force=True), stream=None)
    m, hp = run["metrics"], run["hyperparameters"]
    log(
        f"{table.name}: test accuracy {m['test_accuracy']:.4f}, best epoch "
        f"{m['best_epoch']}/{m['epochs_run']} (max {hp['epochs']}, patience {hp['patience']})"
    )
    for w in run.get("warnings", []):
        log(f"{table.name}: warning: {w}")
    split = read_split(run_dir)
    check_same_rows(table, run, split)
    y_test = split["y_test"]
    model = keras.saving.load_model(run_dir / "model.keras", compile=False)
    ours = np.asarray(model.predict(split["x_test"], verbose=0)).argmax(axis=1)
    log(f"{table.name}: fitting LogisticRegression and HistGradientBoosting on the same split")
    base = fit_baselines(table, split)
    log(f"{table.name}: edgekit export (all targets) ...")
    report = _export(run_dir, work, table.name, key, log)
    variants = {v["target"]: v for v in report.get("variants", [])}
    return {
        "dataset": table.name,
        "rows": int(rows),
        "features": int(features),
        "classes": len(run["labels"]),
        "splits": {p: len(split[f"y_{p}"]) for p in ("train", "val", "test")},
        "edgekit": accuracy(ours, y_test),
        "logreg": accuracy(base["logreg"], y_test),
        "histgb": accuracy(base["histgb"], y_test),
        "edgekit_minus_logreg": paired_difference(ours, base["logreg"], y_test),
        "edgekit_minus_histgb": paired_difference(ours, base["histgb"], y_test),
        "best_epoch": m["best_epoch"],
        "epochs_run": m["epochs_run"],
        "max_epochs": hp["epochs"],
        "patience": hp["patience"],
        "train_seconds": m["train_seconds"],
        "warnings": run.get("warnings", []),
        "int8_agreement": {t: agreement(variants[t]) for t in INT8_TARGETS if t in variants},
        "left_out": report.get("left_out", {}),
        "export_seconds": (report.get("seconds") or {}).get("total"),
    }


def _pct(acc: dict[str, Any] | None, key: str = "accuracy") -> str:
    if acc is None:
        return "n/a"
    low, high = acc["ci95"]
    return f"{100 * acc[key]:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def table_rows(results: list[dict[str, Any]]) -> list[list[Any]]:
    """The report table: one row per dataset, in the order of COLUMNS."""
    out = []
    for r in results:
        d = r["edgekit_minus_logreg"]
        agree = r["int8_agreement"]
        out.append(
            [
                r["dataset"],
                r["splits"]["test"],
                _pct(r["edgekit"]),
                _pct(r["logreg"]),
                _pct(r["histgb"]),
                f"{100 * d['difference']:+.1f} [{100 * d['ci95'][0]:+.1f}, "
                f"{100 * d['ci95'][1]:+.1f}]",
                f"{r['best_epoch']} / {r['epochs_run']} ({r['max_epochs']})",
                *[_pct(agree.get(t), "agreement") for t in INT8_TARGETS],
                ", ".join(sorted(r["left_out"])) or "none",
            ]
        )
    return out


def run_baselines(
    out: Path, quick: bool, log: Log = print, datasets: list[str] | None = None
) -> dict[str, Any]:
    """Every dataset through train + export + baselines; an ``edgekit bench`` result dict."""
    from cloud.bench import tabular_sets
    from cloud.keys import generate_keypair

    work = Path(out) / "work" / "baselines"
    work.mkdir(parents=True, exist_ok=True)
    key, _pub = generate_keypair(work / "keys", force=True)
    names = datasets or list(TABLES)
    tables = [
        tabular_sets.synthetic(QUICK_SYNTHETIC_ROWS) if quick and n == "synthetic" else t
        for n, t in zip(names, load_tables(names), strict=True)
    ]
    results = []
    for i, table in enumerate(tables, 1):
        log(f"baselines [{i}/{len(tables)}] {table.name} ...")
        results.append(bench_table(table, work / table.name, key, log))
    notes = [
        "Same split for all three models: edgekit's stratified 70/15/15 split (seed 0), "
        "recovered from the run's data.npz row indices; the baselines are fitted on the "
        "training rows and scored on the test rows.",
        "Intervals are 95 %: Wilson for accuracy and agreement, Tango's paired score "
        "interval for the edgekit - LogReg difference.",
        "int8 agreement = share of all train, validation and test inputs on which the int8 "
        "variant predicts the same class as the float Keras model (from the export report).",
    ]
    if quick:
        notes.append(f"--quick: the synthetic set has {QUICK_SYNTHETIC_ROWS} rows, not 5000.")
    return {
        "tables": [
            {
                "title": "edgekit vs baselines on the same split",
                "columns": COLUMNS,
                "rows": table_rows(results),
            }
        ],
        "notes": notes,
        "data": {"results": results},
    }


def run(ctx: Any) -> dict[str, Any]:
    """The ``edgekit bench`` entry: ``ctx`` is a cloud.bench.runner.BenchContext."""
    return run_baselines(ctx.out, ctx.quick, ctx.log)


def main(argv: list[str] | None = None) -> int:
    from cloud.bench.report import markdown_table

    p = argparse.ArgumentParser(
        prog="python -m cloud.bench.baselines",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, required=True, help="work directory (runs, bundles)")
    p.add_argument("--quick", action="store_true", help="a smaller synthetic set")
    p.add_argument("--datasets", default=",".join(TABLES), help="comma-separated subset")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    log: Log = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731 - stdout: result
    try:
        result = run_baselines(args.out, args.quick, log, names)
    except EdgekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        table = result["tables"][0]
        print(markdown_table(table["columns"], table["rows"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
