"""Parsing the runtimes' own benchmark tools (saved output; the tools run in the benchmark)."""

from __future__ import annotations

import pytest

from cloud.bench.runtime_tools import parse_benchmark_app, parse_litert_json

BENCHMARK_APP_OUT = """\
[Step 11/11] Dumping statistics report
[ INFO ] Execution Devices:['CPU']
[ INFO ] Count:            200 iterations
[ INFO ] Duration:         9.98 ms
[ INFO ] Latency:
[ INFO ]    Median:        15.63 us
[ INFO ]    Average:       42.29 us
[ INFO ]    Min:           10.84 us
[ INFO ]    Max:           660.18 us
[ INFO ] Throughput:   20030.61 FPS
"""


def test_benchmark_app_microseconds_become_ms() -> None:
    r = parse_benchmark_app(BENCHMARK_APP_OUT)
    assert r.error is None
    assert r.median_ms == pytest.approx(0.01563)
    assert r.avg_ms == pytest.approx(0.04229)
    assert r.typical_ms == pytest.approx(0.01563)


def test_benchmark_app_milliseconds() -> None:
    r = parse_benchmark_app(BENCHMARK_APP_OUT.replace("15.63 us", "3.50 ms"))
    assert r.median_ms == pytest.approx(3.5)


def test_benchmark_app_without_latency_is_an_error_not_a_number() -> None:
    r = parse_benchmark_app("[ ERROR ] Exception from src/inference: cannot read model\n")
    assert r.median_ms is None and r.typical_ms is None
    assert r.error is not None and "no latency" in r.error


def _litert(median: float, avg: float, mbps: float) -> dict[str, object]:
    return {
        "latency": {"median_ms": median, "avg_ms": avg, "p95_ms": median * 1.2},
        "throughput_mb_s": mbps,
    }


def test_litert_json_regular_model() -> None:
    r = parse_litert_json(_litert(12.34, 12.8, 40.0), input_bytes=602112)
    assert r.median_ms == pytest.approx(12.34)
    assert r.avg_ms == pytest.approx(12.8)
    assert r.typical_ms == pytest.approx(12.34)


def test_litert_json_tiny_model_uses_throughput_for_the_mean() -> None:
    # 256 input bytes at 61.19 MB/s = 0.00399 ms; the tool printed 0.00 for everything
    r = parse_litert_json(_litert(0.0, 0.0, 61.19), input_bytes=256)
    assert r.median_ms is None  # 0.00 is below the tool's resolution, not a measurement
    assert r.avg_ms == pytest.approx(256 / 1024 / 1024 / 61.19 * 1000)
    assert r.typical_ms == r.avg_ms
    assert "resolution" in r.note


def test_litert_json_without_latency() -> None:
    r = parse_litert_json({}, input_bytes=None)
    assert r.typical_ms is None
