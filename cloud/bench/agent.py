"""Agent benchmark: in-process overhead over Model.infer, and an agent's footprint.

1. **Overhead ratio.** For each model (``mobilenetv2`` at 224x224x3, alpha 0.35, and the
   ``digits`` reference bundle) and each LiteRT precision, a real :class:`edge.agent.agent.Agent`
   (connected to the bench broker, telemetry thread running) serves the variant, pinned.
   We time ``Agent.predict(raw)`` — input validation + preprocessing + the model's lock and
   the time-limit watchdog + inference + the monitor's record (latency histogram, drift) — against
   ``Model.infer(x)`` on the *same loaded model* with the already-prepared model-domain
   input ``x``: the public API's runtime call (the ``floor`` benchmark shows it against the
   bare runtime). Calls are interleaved A B B A ... so machine noise (other processes, CPU
   frequency) hits both sides alike. Target: median ratio <= 1.05 on mobilenetv2 (issue 14;
   1.10 in issue 3). On digits the model runs in microseconds, so the ratio is
   large by construction; its absolute overhead (microseconds per call) is what to read.
2. **Start-up and RSS** of ``edgekit agent run --bundle digits.ekb`` (a fresh data dir, so
   start-up includes verifying and self-testing the bundle): process start until the
   retained ``online`` status with a model arrives, and resident memory after 5 s of serving
   MQTT requests — in this venv and, when one exists, an edge-only venv built by
   scripts/edge_only_check. Baseline: a bare ``python -c "import numpy, paho.mqtt.client"``
   process of the same interpreter (start-up = until it is ready, RSS = once ready).
3. **Memory per variant** (cloud/bench/agent_memory.py): the agent's RSS pinned to each
   variant of digits and of MobileNetV2 (all six targets), next to the variant's
   ``requires.memory_mb`` measured at export.

The mobilenetv2 bundles are trained and exported once and cached under ``OUT/work/agent``.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cloud.bench.agent_footprint import edge_venv, footprint_ratios, measure_footprints
from cloud.bench.agent_memory import memory_rows, memory_table
from cloud.bench.golden_inputs import raw_inputs
from cloud.bench.runner import BenchContext
from cloud.bench.train_export import (
    digits_subset,
    mobilenet_train_args,
    run_edgekit,
    train_and_export,
)
from cloud.export import TARGETS
from edge.errors import EdgekitError

REPO = Path(__file__).resolve().parents[2]
TARGET_RATIO = 1.05  # issue 14: the agent within 1.05x of Model.infer
MOBILENET_TRAIN = mobilenet_train_args(epochs=1)
EXPORT_TARGETS = "litert-fp32,litert-int8"
ALL_TARGETS = ",".join(TARGETS)


# ---------------------------------------------------------------- pure helpers (tested)


def summarize(values_ms: list[float]) -> dict[str, float]:
    """Median, p95 and mean of timings in ms (nearest-rank-free: numpy's linear)."""
    if not values_ms:
        raise ValueError("no timings to summarise")
    a = np.asarray(values_ms, dtype=np.float64)
    return {
        "n": int(a.size),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "mean": float(a.mean()),
    }


def overhead(agent_ms: list[float], bare_ms: list[float]) -> dict[str, float]:
    """Ratios of the agent path to its baseline call (medians and p95s), and the
    absolute median overhead in microseconds."""
    a, b = summarize(agent_ms), summarize(bare_ms)
    return {
        "ratio_p50": a["p50"] / b["p50"],
        "ratio_p95": a["p95"] / b["p95"],
        "overhead_us_p50": (a["p50"] - b["p50"]) * 1000.0,
    }


def interleaved(
    a: Callable[[], Any],
    b: Callable[[], Any],
    pairs: int,
    warmup: int = 10,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[list[float], list[float]]:
    """Time ``a`` and ``b`` alternately (A B, B A, A B, ...) ``pairs`` times each; ms.
    ``clock``: wall time by default; ``time.thread_time`` counts this thread's CPU time
    only, so a call preempted by another process on a shared machine is not charged."""
    for _ in range(warmup):
        a()
        b()
    ta: list[float] = []
    tb: list[float] = []
    for i in range(pairs):
        for fn, sink in ((a, ta), (b, tb)) if i % 2 == 0 else ((b, tb), (a, ta)):
            t = clock()
            fn()
            sink.append((clock() - t) * 1000.0)
    return ta, tb


# ---------------------------------------------------------------- bundles


def _keys(ctx: BenchContext, work: Path) -> tuple[Path, Path]:
    key, pub = work / "keys" / "edgekit.key", work / "keys" / "edgekit.pub"
    if not (key.exists() and pub.exists()):
        run_edgekit(["keys", "generate", "--out", str(work / "keys")], ctx.log)
    return key, pub


def cached_bundle(
    ctx: BenchContext,
    name: str,
    dataset: str | None,
    train_args: list[str],
    targets: str = EXPORT_TARGETS,
) -> tuple[Path, Path]:
    """Train + export ``name`` once (``targets``: LiteRT fp32 and int8 unless given, gate
    open); reuse it after. The cache key is the recipe: change it and it is rebuilt."""
    work = ctx.workdir(f"agent/{name}")
    bundle, stamp = work / f"{name}.ekb", work / "recipe.json"
    recipe = {"dataset": dataset, "train": train_args, "targets": targets}
    key, pub = _keys(ctx, ctx.workdir("agent"))
    if bundle.exists() and stamp.exists() and json.loads(stamp.read_text()) == recipe:
        ctx.log(f"{name}: reusing {bundle}")
        return bundle, pub
    data = dataset or str(digits_subset(work / "subset.npz", 12))
    export = ("--targets", targets, "--golden-size", "8", "--calibration-samples", "64")
    train_and_export(name, data, work, key, train_args, ctx.log, export)
    stamp.write_text(json.dumps(recipe))
    return bundle, pub


def mobilenet_all_variants(ctx: BenchContext) -> tuple[Path, Path]:
    """MobileNetV2 (the overhead benchmark's recipe) exported to every target, cached."""
    return cached_bundle(ctx, "mobilenetv2-all", None, MOBILENET_TRAIN, ALL_TARGETS)


def digits_bundle(ctx: BenchContext) -> tuple[Path, Path]:
    """The checked-in reference bundle, or one built here when it is not there yet."""
    bundle, pub = REPO / "models" / "digits.ekb", REPO / "models" / "dev-signing.pub"
    if bundle.exists() and pub.exists():
        return bundle, pub
    ctx.log("models/digits.ekb not found: building a digits bundle")
    return cached_bundle(ctx, "digits", "digits", ["--arch", "mlp", "--epochs", "20"])


# ---------------------------------------------------------------- 1. overhead ratio


def measure_overhead(
    ctx: BenchContext, model: str, bundle: Path, pub: Path, precision: str, pairs: int
) -> dict[str, Any]:
    """Agent.predict vs Model.infer on the agent's own loaded LiteRT variant."""
    from edge.agent import Agent, config
    from edge.runtime import prepare

    device = f"bench-ovh-{uuid.uuid4().hex[:6]}"
    cfg = config.load(
        {
            "device_id": device,
            "data_dir": str(ctx.workdir("agent") / "agents" / device),
            "broker": ctx.broker,
            "bundle": str(bundle),
            "trusted_key": str(pub),
            "pin_runtime": "litert",
            "pin_precision": precision,
        },
        environ={},
    )
    agent = Agent(cfg)
    agent.start()
    try:
        served = agent.server.current
        if served is None:
            raise EdgekitError(f"{model} litert-{precision}: the agent serves no model")
        samples = raw_inputs(served.slot.bundle_dir, served.manifest)
        xs = [prepare(served.manifest, s) for s in samples]
        loaded = served.predictor
        infer = loaded.infer
        i = [0, 0]

        def agent_call() -> None:
            agent.predict(samples[i[0] % len(samples)])
            i[0] += 1

        def infer_call() -> None:
            infer(xs[i[1] % len(xs)])
            i[1] += 1

        ctx.log(f"{model} litert-{precision}: {pairs} interleaved pairs (wall, then CPU time)")
        agent_ms, bare_ms = interleaved(agent_call, infer_call, pairs)
        cpu = overhead(*interleaved(agent_call, infer_call, pairs, clock=time.thread_time))
        # Where the overhead goes: the two CPU-bound parts of the agent path, timed alone
        # (the rest is the lock, the watchdog, the Prediction and cache effects).
        scores = served.predictor.infer_model_domain(xs[0])
        parts = {
            "prepare": lambda: served.prepare(samples[0]),
            "monitor_record": lambda: agent.monitor.record(1.0, scores[0], xs[0][0], None),
        }
        parts_us = {
            k: summarize(interleaved(fn, lambda: None, min(pairs, 500), warmup=5)[0])["p50"] * 1000
            for k, fn in parts.items()
        }
    finally:
        agent.stop()
    return {
        "model": model,
        "variant": f"litert-{precision}",
        "input_shape": list(xs[0].shape),
        "threads": loaded.variant.threads,
        "agent_ms": summarize(agent_ms),
        "bare_ms": summarize(bare_ms),
        **overhead(agent_ms, bare_ms),
        "cpu_ratio_p50": cpu["ratio_p50"],
        "cpu_overhead_us_p50": cpu["overhead_us_p50"],
        "parts_us_p50": parts_us,
    }


# ---------------------------------------------------------------- report


def _overhead_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "name": f"{r['model']} {r['variant']}: Agent.predict / Model.infer (p50)",
            "value": round(r["ratio_p50"], 4),
            "baseline": f"Model.infer on the same loaded {r['variant']} model, same input",
            "target": TARGET_RATIO if r["model"] == "mobilenetv2" else None,
            "higher_is_better": False,
            "unit": "x",
        }
        for r in rows
    ]


def run(ctx: BenchContext) -> dict[str, Any]:
    pairs = {"mobilenetv2": 200 if ctx.quick else 1000, "digits": 2000 if ctx.quick else 10000}
    notes: list[str] = []
    bundles = {
        "mobilenetv2": cached_bundle(ctx, "mobilenetv2", None, MOBILENET_TRAIN),
        "digits": digits_bundle(ctx),
    }
    rows = []
    for model, (bundle, pub) in bundles.items():
        for precision in ("fp32", "int8"):
            try:
                rows.append(measure_overhead(ctx, model, bundle, pub, precision, pairs[model]))
            except EdgekitError as exc:
                notes.append(f"{model} litert-{precision} not measured: {exc}")
    fp, venv_note = measure_footprints(ctx, *bundles["digits"])
    venvs = {"this venv (all extras)": Path(sys.executable).parent}
    edge_bin, _note = edge_venv(ctx, *bundles["digits"])
    if edge_bin is not None:
        venvs["edge-only venv"] = edge_bin
    memory = {"digits": bundles["digits"], "mobilenetv2": mobilenet_all_variants(ctx)}
    mem_rows, mem_notes = memory_rows(ctx, memory, venvs)
    notes += [
        venv_note,
        *mem_notes,
        "memory per variant: the agent pinned to one variant (only it is self-tested and "
        "loaded); over bare python = its RSS minus the same venv's bare python + numpy + paho; "
        "export memory_mb = requires.memory_mb in the manifest (the variant alone, measured "
        "at export in a fresh process; empty for bundles exported before it was measured).",
        "overhead: Agent.predict = validate + preprocess + lock and time-limit watchdog + "
        "infer (caller's thread) + monitor record; baseline = Model.infer (the public API's "
        "runtime call, the backend's own infer) on the same loaded model with the prepared "
        "input; interleaved A/B pairs, LiteRT's default threads.",
        "the overhead not in prepare or monitor (timed alone, warm) is the model's lock, the "
        "watchdog, the Prediction and cache effects: right after an inference the caches are "
        "cold and the same Python runs slower.",
        "CPU-time ratio: the same interleaved pairs timed with time.thread_time (this "
        "thread's CPU time), so preemption by other processes on a shared machine is not "
        "charged to either side; cache pollution by them still is.",
        "this venv has ONNX Runtime and OpenVINO installed and models/digits.ekb has variants "
        "for all three, so the unpinned install self-test imports and times every runtime: "
        "hence its larger start-up and RSS (a pinned or edge-only device loads one).",
        "digits runs in microseconds, so its ratio is large by construction: read its "
        "absolute overhead (us) instead.",
        "start-up = process start to the retained online status with a model (fresh data dir, "
        "bundle verified and self-tested); RSS after 5 s of serving MQTT requests.",
    ]
    return {
        "ratios": _overhead_ratios(rows) + footprint_ratios(fp),
        "tables": [
            {
                "title": "In-process agent inference vs Model.infer (ms)",
                "columns": [
                    "model",
                    "variant",
                    "agent p50",
                    "agent p95",
                    "Model.infer p50",
                    "Model.infer p95",
                    "ratio p50",
                    "ratio p95",
                    "overhead us (p50)",
                    "CPU-time ratio p50",
                    "of which prepare us",
                    "of which monitor us",
                ],
                "rows": [
                    [
                        r["model"],
                        r["variant"],
                        r["agent_ms"]["p50"],
                        r["agent_ms"]["p95"],
                        r["bare_ms"]["p50"],
                        r["bare_ms"]["p95"],
                        r["ratio_p50"],
                        r["ratio_p95"],
                        r["overhead_us_p50"],
                        r["cpu_ratio_p50"],
                        r["parts_us_p50"]["prepare"],
                        r["parts_us_p50"]["monitor_record"],
                    ]
                    for r in rows
                ],
            },
            {
                "title": "Agent start-up and memory (digits bundle; medians of runs)",
                "columns": ["install", "process", "start-up s", "RSS MiB", "peak RSS MiB"],
                "rows": [
                    [
                        label,
                        who,
                        res[key]["startup_s"],
                        res[key]["rss_mib"],
                        res[key]["peak_rss_mib"],
                    ]
                    for label, res in fp.items()
                    for key, who in (("bare", "bare python (baseline)"), ("agent", "edgekit agent"))
                ],
            },
            memory_table(mem_rows),
        ],
        "notes": notes,
        "data": {
            "overhead": rows,
            "footprint": fp,
            "memory": mem_rows,
            "target_ratio": TARGET_RATIO,
        },
    }
