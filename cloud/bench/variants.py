"""Variant benchmark: every runtime x precision, our Python latency next to the runtimes' tools.

For ``digits`` (the small CNN) and ``mobilenetv2`` at 224x224 (a realistically sized model;
width 0.35, a couple of epochs on a small digits subset: accuracy is beside the point, the
size of the graph is what matters) this trains with ``edgekit train``, exports all six
targets with ``edgekit export`` (gate opened so every file lands in the bundle; the table
still says which ones the default 1-point gate would drop), then times each model file three
ways: our edge backend's ``infer`` (batch 1, median of N calls), ``litert-benchmark`` for
.tflite and ``benchmark_app`` for OpenVINO IR and ONNX. Everything runs with one thread,
so the numbers compare runtimes, not how many cores a tool grabbed.

``run(ctx)`` plugs into ``edgekit bench``; ``python -m cloud.bench.variants --out DIR``
(or scripts/bench_variants) runs it alone and writes variants.json + variants.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cloud.bench.runtime_tools import ToolResult, run_benchmark_app, run_litert_benchmark
from cloud.bench.train_export import Log, digits_subset, mobilenet_train_args, train_and_export
from cloud.bench.variants_table import COLUMNS, ratios, table_rows
from edge.contract import Artifact, Manifest
from edge.errors import ConfigError, EdgekitError

THREADS = 1


@dataclass(frozen=True)
class ModelSpec:
    """How to train one benchmark model; ``subset`` samples per class (None = all)."""

    name: str
    train_args: list[str]
    subset_per_class: int | None = None


def model_specs(quick: bool) -> list[ModelSpec]:
    return [
        ModelSpec("digits", ["--epochs", "15" if quick else "40"]),
        ModelSpec(
            "mobilenetv2",
            mobilenet_train_args(epochs=1 if quick else 2),
            subset_per_class=12 if quick else 24,
        ),
    ]


def build_bundle(
    spec: ModelSpec, work: Path, key: Path, log: Log, reuse: bool = False
) -> tuple[Path, dict[str, Any]]:
    """Train + export one model; return the extracted bundle dir and its report.json.

    With ``reuse`` a bundle extracted by an earlier run in ``work`` is timed again as is."""
    from edge.bundle import extract_bundle

    if reuse and (work / "bundle" / "report.json").exists():
        log(f"{spec.name}: reusing {work / 'bundle'}")
        return work / "bundle", json.loads((work / "bundle" / "report.json").read_text())
    work.mkdir(parents=True, exist_ok=True)
    dataset = "digits"
    if spec.subset_per_class:
        dataset = str(digits_subset(work / "subset.npz", spec.subset_per_class))
    bundle = train_and_export(
        spec.name, dataset, work, key, spec.train_args, log, stdout_to_stderr=True
    )
    dest = work / "bundle"
    extract_bundle(bundle, dest, key.with_suffix(".pub"), replace=True)
    report = json.loads((dest / "report.json").read_text())
    return dest, report


def python_latency(bundle_dir: Path, art: Artifact, x: np.ndarray, runs: int) -> dict[str, float]:
    """Median/p95 ms of our edge backend's ``infer`` on one sample, after warm-up."""
    from edge.runtime import create

    backend = create(art.runtime, threads=THREADS)
    backend.load(bundle_dir / art.file, art)
    try:
        for _ in range(10):
            backend.infer(x)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            backend.infer(x)
            times.append((time.perf_counter() - t) * 1000)
    finally:
        backend.close()
    times.sort()
    return {"p50": statistics.median(times), "p95": times[int(0.95 * (len(times) - 1))]}


def _input_bytes(art: Artifact) -> int | None:
    if not art.inputs:
        return None
    spec = art.inputs[0]
    item = 1 if spec.dtype in ("int8", "uint8") else 4
    return int(np.prod([d if d > 0 else 1 for d in spec.shape])) * item


def tool_latency(bundle_dir: Path, art: Artifact, shape: list[int], runs: int) -> ToolResult:
    path = bundle_dir / art.file
    if art.runtime == "litert":
        return run_litert_benchmark(path, runs=runs, threads=THREADS, input_bytes=_input_bytes(art))
    return run_benchmark_app(path, shape=shape, iterations=runs, threads=THREADS)


def _best_round(
    py: list[dict[str, float]], tools: list[ToolResult]
) -> tuple[dict[str, float], ToolResult]:
    """The least disturbed of several rounds: the one with the lowest median. On a shared
    machine, load only ever adds latency, so the minimum is the best estimate of each."""
    best_py = min(py, key=lambda r: r["p50"])
    ok = [t for t in tools if t.typical_ms is not None]
    best_tool = min(ok, key=lambda t: t.typical_ms or 0.0) if ok else tools[-1]
    return best_py, best_tool


def measure_model(
    spec: ModelSpec,
    work: Path,
    key: Path,
    runs: int,
    log: Log,
    rounds: int = 1,
    reuse: bool = False,
) -> list[dict[str, Any]]:
    """One row per variant: exporter metrics + our latency + the runtime tool's.

    Variants are timed in ``rounds`` interleaved rounds (all variants, then again), so a
    burst of load from elsewhere hits one round of each rather than all of one variant."""
    bundle_dir, report = build_bundle(spec, work, key, log, reuse)
    manifest = Manifest.parse(json.loads((bundle_dir / "manifest.json").read_text()))
    if manifest.golden is None:
        raise EdgekitError(f"{spec.name}: the bundle has no golden set to time with")
    with np.load(bundle_dir / manifest.golden.entry.file) as g:
        x = np.asarray(g["inputs"][:1], dtype=np.float32)
    exported = {r["target"]: r for r in report["variants"]}
    shape = list(manifest.inputs[0].shape)
    py: dict[str, list[dict[str, float]]] = {a.target: [] for a in manifest.artifacts}
    tools: dict[str, list[ToolResult]] = {a.target: [] for a in manifest.artifacts}
    for k in range(rounds):
        for art in manifest.artifacts:
            log(f"{spec.name} {art.target}: round {k + 1}/{rounds}, {runs} runs each ...")
            py[art.target].append(python_latency(bundle_dir, art, x, runs))
            tools[art.target].append(tool_latency(bundle_dir, art, shape, runs))
    rows = []
    for art in manifest.artifacts:
        r = exported.get(art.target, {})
        best_py, tool = _best_round(py[art.target], tools[art.target])
        drop = r.get("accuracy_drop_points")
        rows.append(
            {
                "model": spec.name,
                "target": art.target,
                "runtime": art.runtime,
                "precision": art.precision,
                "size": sum(e.size for e in art.entries()),  # OpenVINO: .xml + .bin
                "accuracy": r.get("accuracy"),
                "agreement": r.get("agreement"),
                "accuracy_drop_points": drop,
                "passes_default_gate": None if drop is None else drop <= 1.0,
                "export_p50_ms": r.get("latency_ms"),
                "python_ms": best_py["p50"],
                "python_p95_ms": best_py["p95"],
                "python_rounds_p50_ms": [round(p["p50"], 5) for p in py[art.target]],
                "tool": tool.tool,
                "tool_ms": tool.typical_ms,
                "tool_rounds_ms": [t.typical_ms for t in tools[art.target]],
                "tool_detail": tool.to_dict(),
                "tool_error": tool.error,
            }
        )
    for r in rows:
        fp32 = next(
            (f for f in rows if f["runtime"] == r["runtime"] and f["precision"] == "fp32"), None
        )
        r["speedup_vs_fp32"] = (
            fp32["python_ms"] / r["python_ms"] if fp32 and r["python_ms"] else None
        )
        r["tool_speedup_vs_fp32"] = (
            fp32["tool_ms"] / r["tool_ms"]
            if fp32 and fp32.get("tool_ms") and r.get("tool_ms")
            else None
        )
    return rows


def run_variants(
    out: Path,
    quick: bool,
    log: Log = print,
    models: list[str] | None = None,
    reuse: bool = False,
) -> dict[str, Any]:
    """Build, export and time every variant of both models; a ``edgekit bench`` result dict."""
    from cloud.export.charts import latency_comparison_png
    from cloud.keys import generate_keypair

    out = Path(out)
    work = out / "work" / "variants"
    work.mkdir(parents=True, exist_ok=True)
    key = work / "keys" / "edgekit.key"
    if not (reuse and key.exists()):
        key, _pub = generate_keypair(work / "keys", force=True)
    runs, rounds = (100, 1) if quick else (300, 3)
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []
    charts: list[str] = []
    notes = [
        f"batch 1, {THREADS} thread, {runs} timed runs after warm-up, best of {rounds} "
        "interleaved round(s); python = our edge "
        "backend's infer() (includes int8 quantise/dequantise of input and output); tool = "
        "litert-benchmark for .tflite, benchmark_app (-hint none -nstreams 1 -api sync) for "
        "OpenVINO IR and for the .onnx files (ONNX Runtime ships no benchmark tool in its "
        "wheel, so the .onnx 'tool' column is OpenVINO running the same file).",
        "Exported with the gate opened (--max-accuracy-drop 100) so every file can be timed; "
        "'drop pts' shows which variants the default 1-point gate would leave out.",
        "mobilenetv2 is alpha 0.35 at 224x224x3 trained briefly on a digits subset: its "
        "accuracy is meaningless, its size and latency are realistic.",
    ]
    specs = [s for s in model_specs(quick) if models is None or s.name in models]
    if not specs:
        raise ConfigError(f"no such benchmark model(s): {models}; use digits, mobilenetv2")
    for spec in specs:
        log(f"variants: {spec.name} ...")
        model_rows = measure_model(spec, work / spec.name, key, runs, log, rounds, reuse)
        rows += model_rows
        chart = latency_comparison_png(
            [
                {
                    "target": r["target"],
                    "python_ms": r["python_ms"],
                    "litert_benchmark_ms": r["tool_ms"] if r["runtime"] == "litert" else None,
                    "benchmark_app_ms": r["tool_ms"] if r["runtime"] != "litert" else None,
                }
                for r in model_rows
            ],
            out / f"variants-{spec.name}.png",
            f"{spec.name}: median latency per model file (batch 1, 1 thread)",
        )
        charts.append(chart.name)
        notes += [
            f"{r['model']} {r['target']}: {r['tool']} failed: {r['tool_error']}"
            for r in model_rows
            if r["tool_error"]
        ]
    load_after = os.getloadavg()
    notes.append(
        f"1-minute load average {load_before[0]:.1f} before and {load_after[0]:.1f} after "
        f"timing on {os.cpu_count()} cores: a shared machine makes single runs noisy."
    )
    return {
        "ratios": ratios(rows),
        "tables": [
            {
                "title": "Variants per runtime and precision",
                "columns": COLUMNS,
                "rows": table_rows(rows),
            }
        ],
        "charts": charts,
        "notes": notes,
        "data": {
            "rows": rows,
            "threads": THREADS,
            "runs": runs,
            "rounds": rounds,
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
    }


def run(ctx: Any) -> dict[str, Any]:
    """The ``edgekit bench`` entry: ``ctx`` is a cloud.bench.runner.BenchContext."""
    return run_variants(ctx.out, ctx.quick, ctx.log)


def main(argv: list[str] | None = None) -> int:
    from cloud.bench.report import markdown_table
    from cloud.bench.runner import machine_info

    p = argparse.ArgumentParser(
        prog="bench_variants",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", type=Path, required=True, help="directory for variants.json/.md")
    p.add_argument("--quick", action="store_true", help="fewer epochs and timed runs")
    p.add_argument("--models", default="digits,mobilenetv2", help="comma-separated subset")
    p.add_argument(
        "--reuse",
        action="store_true",
        help="time the bundles an earlier run left in OUT/work again (no training)",
    )
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        models = [m.strip() for m in args.models.split(",") if m.strip()]
        result = run_variants(
            args.out, args.quick, lambda m: print(m, flush=True), models, args.reuse
        )
    except EdgekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    doc = {"machine": machine_info(), "quick": args.quick, **result}
    (args.out / "variants.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")
    table = markdown_table(COLUMNS, result["tables"][0]["rows"])
    m = doc["machine"]
    md = [
        "# Variant benchmark",
        "",
        f"{m['cpu']}, {m['cores']} cores, Python {m['python']}{' (quick)' if args.quick else ''}.",
        "",
        table,
        "",
        *[f"- {n}" for n in result["notes"]],
        "",
        *[f"![{c}]({c})" for c in result["charts"]],
    ]
    (args.out / "variants.md").write_text("\n".join(md) + "\n")
    print(table)
    print(f"wrote {args.out / 'variants.json'} and {args.out / 'variants.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
