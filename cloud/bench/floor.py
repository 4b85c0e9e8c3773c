"""The ``floor`` benchmark: is ``Model.infer`` at the runtime's floor, does int8 pay, how many
frames per second (issue 14).

1. **Latency floor.** Every variant of the reference bundles (models/digits.ekb,
   models/tabular.ekb) and of MobileNetV2 alpha 0.35 and 1.0 at 224x224 (exported to all six
   targets, cached under ``OUT/work/agent``; trained one epoch on 120 digits images, i.e.
   practically untrained: fine for latency, meaningless for accuracy), loaded through
   :func:`edge.load_model` with ``threads`` fixed, batch 1. ``Model.infer`` is timed in
   interleaved rounds against the bare Python calls of the same runtime on the same file and
   threads (cloud/bench/floor_bare.py); the fastest of those is the floor (target 1.15). For
   models over 1 ms, also against the runtime's own tool (``litert-benchmark``,
   ``benchmark_app -hint none -nstreams 1 -api sync``), tool runs alternating with
   ``Model.infer`` blocks (target 1.10). ONNX Runtime's wheel has no tool.
2. **int8 speed-up** on MobileNetV2 1.0 at 224x224, 2 threads, per runtime: fp32 median /
   int8 median through ``Model.infer`` (A/B interleaved); the int8 file is the recipe the
   exporter kept (fastest within the gate), i.e. what edgekit ships. Target 1.4 for LiteRT.
3. **Throughput** on MobileNetV2 1.0: frames/s through ``Model.infer`` and ``Model.stream``
   at batch 1 and 8, next to ``benchmark_app -hint throughput`` (OpenVINO) and, for LiteRT,
   ``litert-benchmark`` (batch 1 only: it has neither a throughput mode nor a shape option).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from cloud.bench import floor_table as ft
from cloud.bench.agent import ALL_TARGETS, REPO, cached_bundle, mobilenet_all_variants
from cloud.bench.floor_bare import bare_calls, calls_per_block, interleaved_rounds
from cloud.bench.golden_inputs import raw_inputs
from cloud.bench.runner import BenchContext
from cloud.bench.runtime_tools import (
    ToolResult,
    run_benchmark_app,
    run_benchmark_app_throughput,
    run_litert_benchmark,
)
from cloud.bench.train_export import mobilenet_train_args
from edge import load_model
from edge.bundle import entry_path, extract_bundle, load_public_key
from edge.contract import Artifact, Manifest
from edge.errors import EdgekitError

LATENCY_THREADS = 1  # part 1: one thread, the runtimes compared without core contention
INT8_THREADS = 2  # part 2 and 3: both cores of the device class
INT_IO = ("int8", "uint8")
MOBILENET_100_TRAIN = [
    a if a != "0.35" else "1.0" for a in mobilenet_train_args(epochs=1)
]  # the agent benchmark's recipe at width 1.0


def _settings(quick: bool) -> dict[str, Any]:
    return {
        "rounds": 3 if quick else 7,
        "block_s": 0.12 if quick else 0.25,
        "tool_rounds": 1 if quick else 3,
        "tool_s": 1.0 if quick else 2.5,
        "int8_rounds": 3 if quick else 7,
        "int8_block_s": 0.4 if quick else 0.8,
        "tput_s": 2 if quick else 6,
        "tput_rounds": 1 if quick else 3,
    }


# ---------------------------------------------------------------- bundles


def bundles(ctx: BenchContext) -> dict[str, tuple[Path, Path]]:
    """The four models, each an extracted (verified) directory and its trusted key."""
    models = REPO / "models"
    found = {
        "digits": (models / "digits.ekb", models / "dev-signing.pub"),
        "tabular": (models / "tabular.ekb", models / "dev-signing.pub"),
    }
    for bundle, _pub in found.values():
        if not bundle.exists():
            raise EdgekitError(f"{bundle} is missing: the floor benchmark times the reference")
    found["mobilenetv2-a0.35"] = mobilenet_all_variants(ctx)
    found["mobilenetv2-a1.0"] = cached_bundle(
        ctx, "mobilenetv2-a100-all", None, MOBILENET_100_TRAIN, ALL_TARGETS
    )
    out = {}
    for name, (bundle, pub) in found.items():
        dest = ctx.workdir("floor") / name
        extract_bundle(bundle, dest, load_public_key(pub), replace=True)
        out[name] = (dest, pub)
    return out


def _manifest(bundle_dir: Path) -> Manifest:
    return Manifest.parse(json.loads((bundle_dir / "manifest.json").read_text()))


def _golden(bundle_dir: Path, manifest: Manifest) -> np.ndarray:
    if manifest.golden is None:
        raise EdgekitError(f"{bundle_dir}: the bundle has no golden set to time with")
    with np.load(entry_path(bundle_dir, manifest.golden.entry.file)) as g:
        return np.ascontiguousarray(g["inputs"], dtype=np.float32)


# ---------------------------------------------------------------- 1. latency floor


def _tool(path: Path, art: Artifact, shape: list[int], runs: int, threads: int) -> ToolResult:
    if art.runtime == "litert":
        return run_litert_benchmark(path, runs=runs, threads=threads)
    return run_benchmark_app(path, shape=shape, iterations=runs, threads=threads)


def measure_latency(
    ctx: BenchContext, name: str, bundle_dir: Path, pub: Path, s: dict[str, Any]
) -> list[dict[str, Any]]:
    manifest = _manifest(bundle_dir)
    x = _golden(bundle_dir, manifest)[:1].copy()
    rows = []
    for art in manifest.artifacts:
        ctx.log(f"floor {name} {art.target}: {s['rounds']} interleaved rounds ...")
        with load_model(
            bundle_dir,
            pub,
            runtime=art.runtime,
            precision=art.precision,
            threads=LATENCY_THREADS,
        ) as model:
            path = entry_path(bundle_dir, model.artifact.file)
            calls: dict[str, Any] = {"Model.infer": partial(model.infer, x)}
            calls.update(bare_calls(path, model.artifact, x, LATENCY_THREADS))
            n = calls_per_block(calls["Model.infer"], s["block_s"])
            times = interleaved_rounds(calls, s["rounds"], n)
            infer = model.infer
            tool = None
            infer_ms = float(np.median(times["Model.infer"]))
            if infer_ms > ft.TOOL_MIN_MS and art.runtime != "onnxruntime":
                tool = _tool_pairs(path, art, list(x.shape), infer, x, infer_ms, s)
            variant = {
                "runtime": art.runtime,
                "precision": art.precision,
                "recipe": model.variant.recipe,
                "threads": model.variant.threads,
                "input_dtype": model.artifact.inputs[0].dtype if model.artifact.inputs else None,
            }
        rows.append(ft.latency_row(name, art.target, variant, times, tool))
    return rows


def _tool_pairs(
    path: Path, art: Artifact, shape: list[int], infer: Any, x: np.ndarray, ms: float, s: dict
) -> dict[str, Any]:
    """Tool runs alternating with blocks of as many ``Model.infer`` calls."""
    runs = max(30, int(s["tool_s"] * 1000 / ms))
    out: dict[str, Any] = {"tool": None, "tool_ms": [], "infer_ms": [], "error": None}
    for _ in range(s["tool_rounds"]):
        res = _tool(path, art, shape, runs, LATENCY_THREADS)
        out["tool"] = res.tool
        if res.typical_ms is None:
            out["error"] = res.error or res.note
            break
        out["tool_ms"].append(res.typical_ms)
        block = interleaved_rounds({"Model.infer": partial(infer, x)}, 1, runs)["Model.infer"]
        out["infer_ms"].append(float(np.median(block)))
    return out


# ---------------------------------------------------------------- 2. int8 speed-up


def measure_int8(
    ctx: BenchContext, bundle_dir: Path, pub: Path, s: dict[str, Any]
) -> list[dict[str, Any]]:
    manifest = _manifest(bundle_dir)
    x = _golden(bundle_dir, manifest)[:1].copy()
    rows = []
    for runtime in ("litert", "onnxruntime", "openvino"):
        ctx.log(f"floor int8 {runtime}: fp32 vs int8, {INT8_THREADS} threads ...")
        with (
            load_model(
                bundle_dir, pub, runtime=runtime, precision="fp32", threads=INT8_THREADS
            ) as fp32,
            load_model(
                bundle_dir, pub, runtime=runtime, precision="int8", threads=INT8_THREADS
            ) as int8,
        ):
            calls: dict[str, Any] = {"fp32": partial(fp32.infer, x), "int8": partial(int8.infer, x)}
            n = calls_per_block(calls["fp32"], s["int8_block_s"], lo=10)
            times = interleaved_rounds(calls, s["int8_rounds"], n)
            rows.append(ft.int8_row(runtime, times["fp32"], times["int8"], int8.variant.recipe))
    return rows


# ---------------------------------------------------------------- 3. throughput


def _fps(fn: Any, frames: int, seconds: float) -> float:
    """Frames per second of ``fn`` (one call = ``frames`` frames) over ``seconds``."""
    fn()
    n, t = 0, time.perf_counter()
    while time.perf_counter() - t < seconds:
        fn()
        n += 1
    return n * frames / (time.perf_counter() - t)


def _stream_fps(model: Any, raws: list[np.ndarray], batch: int, seconds: float) -> float:
    """Frames per second of ``Model.stream`` over a stream of raw frames ~``seconds`` long."""
    warm = max(batch * 2, 8)
    for _ in model.stream(itertools.islice(itertools.cycle(raws), warm), batch=batch):
        pass
    t = time.perf_counter()
    for _ in model.stream(itertools.islice(itertools.cycle(raws), warm), batch=batch):
        pass
    per_frame = (time.perf_counter() - t) / warm
    frames = max(warm, int(seconds / max(per_frame, 1e-6)) // batch * batch)
    t = time.perf_counter()
    count = sum(
        1 for _ in model.stream(itertools.islice(itertools.cycle(raws), frames), batch=batch)
    )
    return count / (time.perf_counter() - t)


def measure_throughput(
    ctx: BenchContext, bundle_dir: Path, pub: Path, s: dict[str, Any]
) -> list[dict[str, Any]]:
    manifest = _manifest(bundle_dir)
    golden = _golden(bundle_dir, manifest)
    raws = [r.astype(np.uint8) for r in raw_inputs(bundle_dir, manifest)]  # camera frames
    x1 = golden[:1].copy()
    x8 = np.ascontiguousarray(np.resize(golden, (8, *golden.shape[1:])))
    rows = []
    for art in manifest.artifacts:
        ctx.log(f"floor throughput {art.target}: batch 1 and 8 ...")
        with load_model(
            bundle_dir, pub, runtime=art.runtime, precision=art.precision, threads=INT8_THREADS
        ) as model:
            seconds = s["tput_s"] / s["tput_rounds"]
            figures: dict[str, list[float]] = {}
            for _ in range(s["tput_rounds"]):  # the four figures in turn: load hits them alike
                for b in (1, 8):
                    fn = partial(model.infer, x1 if b == 1 else x8)
                    figures.setdefault(f"infer {b}", []).append(_fps(fn, b, seconds))
                    fps = _stream_fps(model, raws, b, seconds)
                    figures.setdefault(f"stream {b}", []).append(fps)
            row: dict[str, Any] = {
                "target": art.target,
                "runtime": art.runtime,
                "threads": model.variant.threads,
                "infer_fps": {str(b): ft.median(figures[f"infer {b}"]) for b in (1, 8)},
                "stream_fps": {str(b): ft.median(figures[f"stream {b}"]) for b in (1, 8)},
                "rounds_fps": figures,
                "tool": None,
                "tool_fps": {},
                "tool_errors": [],
            }
            path = entry_path(bundle_dir, model.artifact.file)
        shape = list(x1.shape)
        if art.runtime == "openvino":
            for b in (1, 8):
                res = run_benchmark_app_throughput(
                    path, shape=[b, *shape[1:]], seconds=int(s["tput_s"])
                )
                row["tool"] = res.tool
                if res.fps is not None:
                    row["tool_fps"][str(b)] = res.fps
                else:
                    row["tool_errors"].append(res.error)
        elif art.runtime == "litert":
            res = run_litert_benchmark(path, runs=max(30, int(s["tput_s"] * 50)), threads=2)
            row["tool"] = res.tool
            if res.typical_ms:
                row["tool_fps"]["1"] = 1000.0 / res.typical_ms
            else:
                row["tool_errors"].append(res.error)
        rows.append(row)
    return rows


# ---------------------------------------------------------------- the benchmark


def run(ctx: BenchContext) -> dict[str, Any]:
    s = _settings(ctx.quick)
    load_before = os.getloadavg()
    found = bundles(ctx)
    latency: list[dict[str, Any]] = []
    charts: list[str] = []
    for name, (bundle_dir, pub) in found.items():
        rows = measure_latency(ctx, name, bundle_dir, pub, s)
        latency += rows
        chart = ctx.out / f"floor-{name}.png"
        ft.latency_chart(rows, chart, f"{name}: median latency, batch 1, {LATENCY_THREADS} thread")
        charts.append(chart.name)
    big, big_pub = found["mobilenetv2-a1.0"]
    int8 = measure_int8(ctx, big, big_pub, s)
    chart = ctx.out / "floor-int8.png"
    ft.int8_chart(int8, chart, f"MobileNetV2 1.0 224x224: int8 speed-up, {INT8_THREADS} threads")
    charts.append(chart.name)
    tput = measure_throughput(ctx, big, big_pub, s)
    load_after = os.getloadavg()
    notes = [
        f"latency: batch 1, {LATENCY_THREADS} thread, {s['rounds']} interleaved rounds of "
        "about {:.2f} s per call style; medians of every call.".format(s["block_s"]),
        "bare = the fastest of the runtime's own Python calls on the same file and threads "
        "(cloud/bench/floor_bare.py), fed an input already in the model's dtype (int8 "
        "quantised before timing) and returning its raw output: strictly less work than "
        "Model.infer, which takes float32 and returns float32 scores.",
        "tool = litert-benchmark (LiteRT's CompiledModel in a Python loop: timed around "
        "its run call, no input write) or benchmark_app (C++ runtime, inputs filled once), "
        "only for models whose Model.infer median is over 1 ms; ONNX Runtime's wheel ships "
        "no tool, so its variants have none.",
        "MobileNetV2 models are trained one epoch on 120 digits images: practically "
        "untrained weights, fine for latency, meaningless for accuracy; the int8 files are "
        "the recipes the exporter kept (fastest within the opened gate).",
        f"int8 speed-up: MobileNetV2 1.0 224x224, {INT8_THREADS} threads, fp32 and int8 "
        f"loaded side by side, {s['int8_rounds']} interleaved rounds.",
        f"throughput: MobileNetV2 1.0, {INT8_THREADS} threads, ~{s['tput_s']} s per figure "
        f"in {s['tput_rounds']} alternating round(s), median; "
        "Model.stream takes uint8 camera-like frames (preparation included), Model.infer "
        "a prepared batch. Tools: benchmark_app -hint throughput (async, streams and threads "
        "of its own choice); litert-benchmark has no throughput mode and no shape option, so "
        "LiteRT has a batch-1 tool figure only (1000 / its median ms, 2 threads); ONNX "
        "Runtime none.",
        f"1-minute load average {load_before[0]:.1f} before and {load_after[0]:.1f} after, "
        f"{os.cpu_count()} cores shared with other work: single figures are noisy.",
    ]
    notes += [
        f"{r['model']} {r['target']}: {r['tool']} failed: {r['tool_error']}"
        for r in latency
        if r.get("tool_error")
    ]
    notes += [f"throughput {r['target']}: {e}" for r in tput for e in r["tool_errors"] if e]
    integer_io = [
        f"{r['model']} {r['target']} (recipe {r['recipe'] or 'none: exported before recipes'})"
        for r in latency
        if r["input_dtype"] in INT_IO
    ]
    if integer_io:
        notes.append(
            f"{', '.join(integer_io)}: integer input and output tensors in the model file, "
            "so Model.infer "
            "quantises the float input and dequantises the scores in numpy, a few "
            "microseconds the bare floor (fed int8, returning int8) is spared; on "
            "microsecond models that is most of the ratio. A re-export lets the exporter "
            "pick the float-io recipe where it is faster."
        )
    return {
        "ratios": ft.latency_ratios(latency)
        + ft.int8_ratios(int8, "mobilenetv2-a1.0", INT8_THREADS)
        + ft.throughput_ratios(tput, "mobilenetv2-a1.0"),
        "tables": [
            {
                "title": "Model.infer against the bare runtime call and the runtime's tool",
                "columns": ft.LATENCY_COLUMNS,
                "rows": ft.latency_table(latency),
            },
            {
                "title": f"int8 speed-up, MobileNetV2 1.0 224x224, {INT8_THREADS} threads",
                "columns": ft.INT8_COLUMNS,
                "rows": ft.int8_table(int8),
            },
            {
                "title": f"Frames per second, MobileNetV2 1.0 224x224, {INT8_THREADS} threads",
                "columns": ft.THROUGHPUT_COLUMNS,
                "rows": ft.throughput_table(tput),
            },
        ],
        "charts": charts,
        "notes": notes,
        "data": {
            "latency": latency,
            "int8": int8,
            "throughput": tput,
            "settings": s,
            "latency_threads": LATENCY_THREADS,
            "int8_threads": INT8_THREADS,
            "load_average_before": load_before,
            "load_average_after": load_after,
        },
    }
