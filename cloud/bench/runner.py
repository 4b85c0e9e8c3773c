"""Run a set of benchmarks and assemble their results into one report.

A benchmark module exposes ``run(ctx: BenchContext) -> dict`` returning any of:
``ratios`` (list of {name, value, baseline, target, higher_is_better, unit}),
``tables`` (list of {title, columns, rows}), ``charts`` (paths relative to the out dir),
``notes`` (list of str) and free-form ``data``. A benchmark that fails is recorded with its
error and the others still run.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.errors import ConfigError

# Benchmark name -> module with run(ctx); the CLI offers these names.
BENCHMARKS: dict[str, str] = {
    "variants": "cloud.bench.variants",
    "agent": "cloud.bench.agent",
    "mqtt": "cloud.bench.mqtt_rtt",
    "ingest": "cloud.bench.ingest",
    "scale": "cloud.bench.scale",
    "baselines": "cloud.bench.baselines",
    "floor": "cloud.bench.floor",
}


@dataclass
class BenchContext:
    """What every benchmark gets: where to write, how hard to try, which broker to use."""

    out: Path
    quick: bool
    broker: str | None = None
    cache: dict[str, Any] = field(default_factory=dict)  # shared artefacts (trained runs)

    def workdir(self, name: str) -> Path:
        path = self.out / "work" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log(self, message: str) -> None:
        print(f"  {message}", flush=True)


def machine_info() -> dict[str, Any]:
    """The machine the numbers came from, so a report is never read without it."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = None
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as f:
        mem_gib = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem_gib,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


@contextlib.contextmanager
def mosquitto_broker() -> Iterator[str]:
    """A private Mosquitto on a free loopback port (amqtt if Mosquitto is not installed)."""
    from cloud.demo.broker import EmbeddedBroker, free_port, wait_for_port

    exe = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
    )
    if exe is None:
        with EmbeddedBroker() as broker:
            yield broker.url
        return
    port = free_port()
    conf = Path(os.environ.get("TMPDIR", "/tmp")) / f"edgekit-bench-mosquitto-{port}.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\nmax_queued_messages 100000\n"
        "persistence false\n"
    )
    proc = subprocess.Popen(
        [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        if not wait_for_port("127.0.0.1", port, 10):
            raise ConfigError(f"mosquitto did not start on port {port}")
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        conf.unlink(missing_ok=True)


def run_benchmarks(out: str | Path, only: str, *, quick: bool, broker: str | None) -> int:
    from cloud.bench.report import write_report

    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown or not names:
        raise ConfigError(
            f"unknown benchmark(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(BENCHMARKS)}"
        )
    out_dir = Path(out).resolve()  # benchmarks start processes in other directories
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    with contextlib.ExitStack() as stack:
        url = broker or stack.enter_context(mosquitto_broker())
        ctx = BenchContext(out=out_dir, quick=quick, broker=url)
        for i, name in enumerate(names, 1):
            print(f"[{i}/{len(names)}] benchmark {name} ...", flush=True)
            started = time.perf_counter()
            try:
                module = importlib.import_module(BENCHMARKS[name])
                result = dict(module.run(ctx))
                result["status"] = "ok"
            except Exception as exc:  # one broken benchmark must not hide the others
                traceback.print_exc(file=sys.stderr)
                result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            result["seconds"] = round(time.perf_counter() - started, 1)
            results[name] = result
            print(f"[{i}/{len(names)}] {name}: {result['status']} in {result['seconds']} s")
    doc = {
        "schema": "edgekit.bench/1",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine_info(),
        "benchmarks": results,
    }
    (out_dir / "bench.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    report = write_report(out_dir, doc)
    print(f"wrote {out_dir / 'bench.json'} and {report}")
    return 0 if all(r["status"] == "ok" for r in results.values()) else 1
