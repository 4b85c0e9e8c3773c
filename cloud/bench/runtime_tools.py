"""Run the runtimes' own benchmark tools on a model file and parse what they print.

``litert-benchmark`` (ai-edge-litert) and OpenVINO's ``benchmark_app`` are the reference
our Python-side latency is compared against: same model file, batch 1, the same threads,
synchronous calls; and benchmark_app's throughput mode for frames per second (the floor
benchmark). Parsing is separate from running so it can be tested on saved output.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TIMEOUT_S = 900


@dataclass(frozen=True)
class ToolResult:
    """Latency a runtime's own tool measured; ``error`` set instead when it failed."""

    tool: str
    median_ms: float | None = None
    avg_ms: float | None = None
    p95_ms: float | None = None
    fps: float | None = None  # throughput mode: frames (samples) per second
    note: str = ""
    error: str | None = None

    @property
    def typical_ms(self) -> float | None:
        """The median, or the mean when the tool could not resolve the median."""
        return self.median_ms if self.median_ms is not None else self.avg_ms

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if v not in (None, "")}
        d["typical_ms"] = self.typical_ms
        return d


def find_tool(name: str) -> str | None:
    """The tool next to this interpreter (the venv's bin) first, then on PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


def _tail(text: str, lines: int = 3) -> str:
    return " / ".join(line.strip() for line in text.strip().splitlines()[-lines:])[:400]


def parse_litert_json(doc: dict[str, Any], input_bytes: int | None) -> ToolResult:
    """Read ``--result_json`` output. The tool rounds times to 0.01 ms, which hides tiny
    models; its throughput (input MB/s, 4 significant digits) gives the mean precisely."""
    lat = doc.get("latency") or {}
    median, avg, p95 = lat.get("median_ms"), lat.get("avg_ms"), lat.get("p95_ms")
    note = ""
    if median is not None and median < 0.1:  # 0.00-0.09: two digits are not a measurement
        median, p95, note = None, None, "median below the tool's 0.01 ms print resolution"
    mbps = doc.get("throughput_mb_s")
    if input_bytes and isinstance(mbps, (int, float)) and mbps > 0:
        precise_avg = input_bytes / (1024 * 1024) / mbps * 1000
        if avg is None or avg < 0.1:
            avg = precise_avg
            note = (note + "; " if note else "") + "mean from throughput"
    return ToolResult(
        "litert-benchmark",
        median_ms=float(median) if median is not None else None,
        avg_ms=float(avg) if avg is not None else None,
        p95_ms=float(p95) if p95 is not None else None,
        note=note,
    )


def run_litert_benchmark(
    model: Path, *, runs: int, threads: int = 1, input_bytes: int | None = None
) -> ToolResult:
    """``litert-benchmark --model M --num_runs N --num_threads T --result_json F``."""
    exe = find_tool("litert-benchmark")
    if exe is None:
        return ToolResult("litert-benchmark", error="litert-benchmark not installed")
    out = model.with_suffix(".litert-benchmark.json")
    cmd = [exe, "--model", str(model), "--num_runs", str(runs), "--warmup_runs", "10"]
    cmd += ["--num_threads", str(threads), "--result_json", str(out)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return ToolResult("litert-benchmark", error=f"timed out after {TIMEOUT_S} s")
    if proc.returncode != 0 or not out.exists():
        err = _tail(proc.stderr or proc.stdout)
        return ToolResult("litert-benchmark", error=f"exit {proc.returncode}: {err}")
    try:
        doc = json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)
    return parse_litert_json(doc, input_bytes)


_BA_LINE = re.compile(r"^\[\s*INFO\s*\]\s+(Median|Average|Min|Max):\s+([\d.]+)\s*(ms|us)\s*$")


def parse_benchmark_app(text: str) -> ToolResult:
    """Read the ``Latency:`` block of benchmark_app's report (values in ms or us)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        m = _BA_LINE.match(line.strip())
        if m:
            value = float(m.group(2)) / (1000.0 if m.group(3) == "us" else 1.0)
            found.setdefault(m.group(1).lower(), value)
    if "median" not in found:
        return ToolResult("benchmark_app", error=f"no latency in output: {_tail(text)}")
    return ToolResult("benchmark_app", median_ms=found["median"], avg_ms=found.get("average"))


def run_benchmark_app(
    model: Path, *, shape: list[int], iterations: int, threads: int = 1
) -> ToolResult:
    """``benchmark_app -m M -d CPU -hint none -nstreams 1 -nthreads T -api sync -niter N``.

    It reads OpenVINO IR and ONNX files alike, so it is the second opinion on both. The
    latency hint refuses an explicit thread count, so the hint is off and one stream with
    ``threads`` threads is asked for: the same setting as our backends in the benchmark.
    """
    args = ["-hint", "none", "-nstreams", "1", "-nthreads", str(threads), "-api", "sync"]
    return _benchmark_app(model, shape, [*args, "-niter", str(iterations)], parse_benchmark_app)


def _benchmark_app(
    model: Path, shape: list[int], args: list[str], parse: Callable[[str], ToolResult]
) -> ToolResult:
    """Run ``benchmark_app -m M -d CPU ARGS -shape [..]`` and ``parse`` its report; a
    missing tool, a timeout or a failed run is a ToolResult with the error."""
    exe = find_tool("benchmark_app")
    if exe is None:
        return ToolResult("benchmark_app", error="benchmark_app not installed")
    dims = ",".join(str(d if d > 0 else 1) for d in shape)
    cmd = [exe, "-m", str(model), "-d", "CPU", *args, "-shape", f"[{dims}]"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return ToolResult("benchmark_app", error=f"timed out after {TIMEOUT_S} s")
    if proc.returncode != 0:
        return ToolResult(
            "benchmark_app", error=f"exit {proc.returncode}: {_tail(proc.stdout + proc.stderr)}"
        )
    return parse(proc.stdout)


_BA_FPS = re.compile(r"^\[\s*INFO\s*\]\s+Throughput:\s+([\d.]+)\s*FPS\s*$")


def parse_benchmark_app_throughput(text: str) -> ToolResult:
    """Read ``Throughput: N FPS`` (frames: batch size x iterations per second) and the
    latency block of benchmark_app's report in throughput mode."""
    fps = None
    for line in text.splitlines():
        m = _BA_FPS.match(line.strip())
        if m:
            fps = float(m.group(1))
    if fps is None:
        return ToolResult("benchmark_app", error=f"no throughput in output: {_tail(text)}")
    latency = parse_benchmark_app(text)
    return ToolResult("benchmark_app", median_ms=latency.median_ms, avg_ms=latency.avg_ms, fps=fps)


def run_benchmark_app_throughput(model: Path, *, shape: list[int], seconds: int) -> ToolResult:
    """``benchmark_app -m M -d CPU -hint throughput -shape [N,...] -t S``: the tool's own
    throughput mode (async requests, streams and threads of its choosing). The hint refuses
    an explicit thread count, so the tool takes the whole machine, as a camera pipeline would."""
    args = ["-hint", "throughput", "-t", str(seconds)]
    return _benchmark_app(model, shape, args, parse_benchmark_app_throughput)
