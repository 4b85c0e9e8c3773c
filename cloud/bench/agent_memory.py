"""The agent's resident memory per variant, with the digits model and with MobileNetV2.

For each variant of each bundle, ``edgekit agent run --bundle B`` is started pinned to that
variant (``EDGEKIT_PIN_RUNTIME`` / ``EDGEKIT_PIN_PRECISION``, so the self-test loads only it
and the agent's RSS is what a device serving it holds), answers MQTT inference requests for
a few seconds and has its VmRSS and VmHWM read from /proc (cloud/bench/agent_footprint.py
``agent_once``). Each install runs the variants its runtimes allow: this venv all of them,
the edge-only venv the LiteRT ones. Next to it: the bare-python baseline of the same venv and
the ``requires.memory_mb`` the exporter measured for the variant (edge/runtime/footprint.py:
the variant's own growth in a fresh process), so the agent's own share can be read off.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from cloud.bench.agent_footprint import agent_once, bare_once
from cloud.bench.golden_inputs import raw_inputs
from cloud.bench.runner import BenchContext
from edge.contract import MAX_PAYLOAD_BYTES
from edge.errors import EdgekitError

# Which runtimes a venv has, asked of the venv itself (its own edge package, no import of
# any runtime).
RUNTIMES_CODE = (
    "import json; from edge.runtime.device import describe_runtimes; "
    "print(json.dumps(sorted(k for k, v in describe_runtimes().items() if v.get('available'))))"
)
COLUMNS = [
    "model",
    "variant",
    "install",
    "agent RSS MiB",
    "agent peak RSS MiB",
    "over bare python MiB",
    "export memory_mb",
]


def venv_runtimes(venv_bin: Path) -> list[str]:
    """The runtimes installed in the venv of ``venv_bin`` ([] when it cannot tell)."""
    proc = subprocess.run(
        [str(venv_bin / "python"), "-c", RUNTIMES_CODE],
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )
    try:
        found = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return []
    return [str(r) for r in found] if isinstance(found, list) else []


def request_input(sample: np.ndarray) -> Any:
    """A raw sample as the JSON list an ``infer/req`` carries; an image too large for the
    1 MiB MQTT payload limit as floats (224x224x3) is rounded to whole pixel values (the
    answers are not judged here, only served)."""
    big = sample.size * 12 > MAX_PAYLOAD_BYTES // 2
    return np.round(sample).astype(np.int64).tolist() if big else sample.tolist()


def export_memory_mb(metrics: dict[str, Any]) -> float | None:
    """``requires.memory_mb`` of a variant's manifest metrics, None when not stated."""
    req = metrics.get("requires")
    value = req.get("memory_mb") if isinstance(req, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def memory_rows(
    ctx: BenchContext,
    bundles: dict[str, tuple[Path, Path]],
    venvs: dict[str, Path],
    *,
    serve_s: float = 3.0,
) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per (model, variant, install): the agent's RSS serving that variant pinned;
    and notes for variants that could not be measured."""
    from edge.bundle import extract_bundle
    from edge.contract import Manifest

    assert ctx.broker is not None
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    work = ctx.workdir("agent") / "memory"
    for label, venv_bin in venvs.items():
        have = venv_runtimes(venv_bin)
        bare = bare_once(venv_bin / "python")
        for model, (bundle, pub) in bundles.items():
            extracted = work / f"{model}-extracted"
            extract_bundle(bundle, extracted, pub, replace=True)
            manifest = Manifest.parse(json.loads((extracted / "manifest.json").read_text()))
            inputs = [request_input(s) for s in raw_inputs(extracted, manifest)]
            for a in manifest.artifacts:
                if a.runtime not in have:
                    continue
                ctx.log(f"agent RSS: {model} {a.target} ({label})")
                pins = {"EDGEKIT_PIN_RUNTIME": a.runtime, "EDGEKIT_PIN_PRECISION": a.precision}
                try:
                    run = agent_once(
                        [str(venv_bin / "edgekit")],
                        ctx.broker,
                        bundle,
                        pub,
                        work / "agents",
                        inputs,
                        serve_s,
                        env=pins,
                    )
                except (EdgekitError, TimeoutError, OSError) as exc:
                    notes.append(f"{model} {a.target} ({label}) not measured: {exc}")
                    continue
                rows.append(
                    {
                        "model": model,
                        "variant": a.target,
                        "install": label,
                        "rss_mib": round(run["rss_mib"], 1),
                        "peak_rss_mib": round(run["peak_rss_mib"], 1),
                        "over_bare_mib": round(run["rss_mib"] - bare["rss_mib"], 1),
                        "bare_rss_mib": round(bare["rss_mib"], 1),
                        "export_memory_mb": export_memory_mb(a.metrics),
                        "served": run["served"],
                    }
                )
    return rows, notes


def memory_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "title": "Agent resident memory per variant (pinned; after a few s of MQTT requests)",
        "columns": COLUMNS,
        "rows": [
            [
                r["model"],
                r["variant"],
                r["install"],
                r["rss_mib"],
                r["peak_rss_mib"],
                r["over_bare_mib"],
                r["export_memory_mb"],
            ]
            for r in rows
        ],
    }
