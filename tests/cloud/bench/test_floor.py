"""The floor benchmark's pure parts: ratios and tables from timings, tool output parsing,
charts written; and that its bare runtime calls compute what Model.infer computes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.bench import floor_table as ft
from cloud.bench.floor_bare import _in_dtype, bare_calls, interleaved_rounds
from cloud.bench.runtime_tools import parse_benchmark_app_throughput

REPO = Path(__file__).resolve().parents[3]

THROUGHPUT_OUT = """\
[Step 11/11] Dumping statistics report
[ INFO ] Execution Devices:['CPU']
[ INFO ] Count:            48064 iterations
[ INFO ] Duration:         3000.09 ms
[ INFO ] Latency:
[ INFO ]    Median:        34.86 us
[ INFO ]    Average:       60.59 us
[ INFO ]    Min:           9.80 us
[ INFO ]    Max:           28785.93 us
[ INFO ] Throughput:   128167.01 FPS
"""

VARIANT = {"runtime": "litert", "precision": "fp32", "recipe": None, "threads": 1}


def test_ratio_is_none_without_a_usable_baseline() -> None:
    assert ft.ratio(2.0, 1.0) == 2.0
    assert ft.ratio(None, 1.0) is None
    assert ft.ratio(1.0, None) is None
    assert ft.ratio(1.0, 0.0) is None


def test_the_floor_is_the_fastest_bare_call_style() -> None:
    assert ft.floor_of({"a": 2.0, "b": 1.5, "c": 3.0}) == ("b", 1.5)
    assert ft.floor_of({}) == (None, None)


def test_latency_row_divides_infer_median_by_the_fastest_bare_median() -> None:
    times = {"Model.infer": [1.2, 1.1, 5.0], "slow": [2.0, 2.0, 2.0], "fast": [1.0, 1.0, 9.0]}
    row = ft.latency_row("digits", "litert-fp32", VARIANT, times)
    assert row["infer_ms"] == pytest.approx(1.2)
    assert (row["bare_call"], row["bare_ms"]) == ("fast", 1.0)
    assert row["ratio_bare"] == pytest.approx(1.2)
    assert row["bare_ms_by_call"] == {"slow": 2.0, "fast": 1.0}
    assert row["tool"] is None and row["ratio_tool"] is None


def test_latency_row_tool_ratio_uses_the_paired_infer_blocks() -> None:
    times = {"Model.infer": [3.0], "bare": [2.9]}
    tool = {"tool": "benchmark_app", "tool_ms": [2.0, 2.2, 2.1], "infer_ms": [2.4, 2.2, 2.3]}
    row = ft.latency_row("m", "openvino-fp32", {**VARIANT, "runtime": "openvino"}, times, tool)
    assert row["tool_ms"] == pytest.approx(2.1)
    assert row["ratio_tool"] == pytest.approx(2.3 / 2.1)


def test_tool_ratio_only_for_models_over_one_millisecond() -> None:
    tool = {"tool": "litert-benchmark", "tool_ms": [0.5], "infer_ms": [0.6]}
    small = ft.latency_row(
        "digits", "litert-fp32", VARIANT, {"Model.infer": [0.6], "b": [0.5]}, tool
    )
    big = ft.latency_row("mnv2", "litert-fp32", VARIANT, {"Model.infer": [3.0], "b": [2.9]}, tool)
    ratios = ft.latency_ratios([small, big])
    assert [r["target"] for r in ratios] == [ft.BARE_TARGET, ft.BARE_TARGET, ft.TOOL_TARGET]
    assert all(r["higher_is_better"] is False and r["baseline"] for r in ratios)
    assert "litert-benchmark" in ratios[2]["name"]


def test_latency_table_in_microseconds_and_onnx_has_no_tool() -> None:
    row = ft.latency_row(
        "digits",
        "onnxruntime-fp32",
        {**VARIANT, "runtime": "onnxruntime"},
        {"Model.infer": [0.004], "b": [0.002]},
    )
    (line,) = ft.latency_table([row])
    assert len(line) == len(ft.LATENCY_COLUMNS)
    assert line[4] == pytest.approx(4.0) and line[5] == pytest.approx(2.0)
    assert line[7] == pytest.approx(2.0)
    assert line[8] == "none"


def test_int8_speedup_target_is_for_litert_only() -> None:
    rows = [
        ft.int8_row("litert", [10.0, 10.0], [5.0, 6.0], "int8-io"),
        ft.int8_row("openvino", [4.0], [4.0], "nncf-cpu"),
    ]
    assert rows[0]["speedup"] == pytest.approx(10.0 / 5.5)
    ratios = ft.int8_ratios(rows, "mobilenetv2-a1.0", 2)
    assert [r["target"] for r in ratios] == [1.4, None]
    assert all(r["higher_is_better"] for r in ratios)
    assert ft.int8_table(rows)[0] == ["litert", "int8-io", 10.0, 5.5, pytest.approx(1.818)]


def test_throughput_ratios_only_where_the_tool_measured() -> None:
    rows: list[dict[str, Any]] = [
        {
            "target": "openvino-fp32",
            "tool": "benchmark_app",
            "infer_fps": {"1": 50.0, "8": 60.0},
            "stream_fps": {"1": 48.0, "8": 70.0},
            "tool_fps": {"1": 55.0, "8": 80.0},
        },
        {
            "target": "onnxruntime-fp32",
            "tool": None,
            "infer_fps": {"1": 40.0, "8": 45.0},
            "stream_fps": {"1": 39.0, "8": 44.0},
            "tool_fps": {},
        },
    ]
    ratios = ft.throughput_ratios(rows, "m")
    assert [r["value"] for r in ratios] == [pytest.approx(48 / 55, abs=1e-3), 0.875]
    table = ft.throughput_table(rows)
    assert table[0][-1] == 0.875 and table[1][-1] is None
    assert len(table[0]) == len(ft.THROUGHPUT_COLUMNS)


def test_benchmark_app_throughput_is_parsed_in_frames_per_second() -> None:
    r = parse_benchmark_app_throughput(THROUGHPUT_OUT)
    assert r.error is None
    assert r.fps == pytest.approx(128167.01)
    assert r.median_ms == pytest.approx(0.03486)
    assert r.to_dict()["fps"] == pytest.approx(128167.01)


def test_benchmark_app_throughput_without_fps_is_an_error() -> None:
    r = parse_benchmark_app_throughput("[ ERROR ] cannot compile\n")
    assert r.fps is None and r.error is not None and "no throughput" in r.error


def test_charts_are_written(tmp_path: Path) -> None:
    rows = [
        ft.latency_row("m", "litert-fp32", VARIANT, {"Model.infer": [2.0], "b": [1.9]}),
        ft.latency_row("m", "litert-int8", VARIANT, {"Model.infer": [1.0], "b": [0.9]}),
    ]
    lat = ft.latency_chart(rows, tmp_path / "lat.png", "latency")
    int8 = ft.int8_chart(
        [ft.int8_row("litert", [2.0], [1.0], "x"), ft.int8_row("onnxruntime", [1.0], [2.0], None)],
        tmp_path / "int8.png",
        "int8",
    )
    for path in (lat, int8):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_interleaved_rounds_times_every_call_every_round() -> None:
    seen: list[str] = []
    calls = {"a": lambda: seen.append("a"), "b": lambda: seen.append("b")}
    times = interleaved_rounds(calls, rounds=3, n=4)
    assert {k: len(v) for k, v in times.items()} == {"a": 12, "b": 12}
    assert seen.count("a") == seen.count("b") == 3 * (4 + 1)  # one untimed call per switch
    assert seen[0] != seen[5 + 5]  # the order changes between rounds


def test_integer_inputs_are_quantised_and_clipped() -> None:
    x = np.array([[0.0, 0.5, 100.0, -100.0]], np.float32)
    q = _in_dtype(x, np.dtype(np.int8), (0.5, -3))
    assert q.dtype == np.int8 and q.tolist() == [[-3, -2, 127, -128]]
    with pytest.raises(Exception, match="scale"):
        _in_dtype(x, np.dtype(np.int8), None)


@pytest.mark.parametrize("bundle", ["digits", "tabular"])
def test_bare_calls_compute_what_model_infer_computes(bundle: str) -> None:
    """The floor must be the same work: every bare style's scores match Model.infer."""
    from edge import load_model
    from edge.bundle import entry_path
    from edge.runtime import load_golden
    from edge.runtime.backends.quant import dequantize

    path, pub = REPO / "models" / f"{bundle}.ekb", REPO / "models" / "dev-signing.pub"
    with load_model(path, pub, runtime="litert", precision="fp32") as probe:
        x = np.ascontiguousarray(load_golden(probe.bundle_dir, probe.manifest)["inputs"][:1])
        arts = [a for a in probe.manifest.artifacts if _installed(a.runtime)]
    for art in arts:
        with load_model(path, pub, runtime=art.runtime, precision=art.precision, threads=1) as m:
            want = m.infer(x)
            calls = bare_calls(entry_path(m.bundle_dir, m.artifact.file), m.artifact, x, 1)
            assert len(calls) >= 2
            out_spec = m.artifact.outputs[0]
            for name, call in calls.items():
                got = np.asarray(call())
                if got.dtype.kind in "iu":
                    assert out_spec.scale is not None
                    got = dequantize(got, out_spec.scale, out_spec.zero_point or 0)
                    tol = float(out_spec.scale)
                else:
                    tol = 1e-5
                np.testing.assert_allclose(
                    got.reshape(want.shape), want, atol=tol, err_msg=f"{art.target} {name}"
                )


def _installed(runtime: str) -> bool:
    import importlib.util

    module = {"litert": "ai_edge_litert", "onnxruntime": "onnxruntime", "openvino": "openvino"}
    return importlib.util.find_spec(module[runtime]) is not None
