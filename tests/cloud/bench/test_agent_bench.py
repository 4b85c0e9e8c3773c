"""The agent benchmark's pure helpers: statistics, ratios, interleaving, /proc and log parsing.

Nothing here times anything: benchmarks are measured by ``edgekit bench``, never asserted.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from cloud.bench.agent import TARGET_RATIO, _overhead_ratios, interleaved, overhead, summarize
from cloud.bench.agent_footprint import (
    _median_run,
    footprint_ratios,
    parse_proc_status,
    parse_ready_line,
    rss_mib,
)
from tests.scripts import load_script


def test_summarize_median_p95_mean() -> None:
    s = summarize([float(v) for v in range(1, 101)])
    assert s["n"] == 100
    assert s["p50"] == pytest.approx(50.5)
    assert s["p95"] == pytest.approx(95.05)
    assert s["mean"] == pytest.approx(50.5)


def test_summarize_refuses_no_timings() -> None:
    with pytest.raises(ValueError):
        summarize([])


def test_overhead_is_agent_over_bare_and_absolute_in_microseconds() -> None:
    o = overhead(agent_ms=[1.1, 1.1, 1.1, 2.2], bare_ms=[1.0, 1.0, 1.0, 2.0])
    assert o["ratio_p50"] == pytest.approx(1.1)
    assert o["overhead_us_p50"] == pytest.approx(100.0)
    assert o["ratio_p95"] == pytest.approx(summarize([1.1] * 3 + [2.2])["p95"] / 1.85, rel=1e-6)


def test_interleaved_alternates_order_and_counts_warmup_separately() -> None:
    calls: list[str] = []
    ta, tb = interleaved(lambda: calls.append("a"), lambda: calls.append("b"), pairs=4, warmup=1)
    assert len(ta) == len(tb) == 4
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]
    assert all(t >= 0 for t in ta + tb)


PROC_STATUS = """Name:\tpython3
VmPeak:\t  912344 kB
VmHWM:\t   98304 kB
VmRSS:\t   81920 kB
Threads:\t9
"""


def test_parse_proc_status_reads_vm_lines_in_kib() -> None:
    got = parse_proc_status(PROC_STATUS)
    assert got == {"VmPeak": 912344, "VmHWM": 98304, "VmRSS": 81920}
    assert parse_proc_status("garbage\nVmRSS: lots kB\n") == {}


def test_rss_of_this_process_is_positive() -> None:
    mem = rss_mib(__import__("os").getpid())
    assert 0 < mem["rss_mib"] <= mem["peak_rss_mib"]


def test_parse_ready_line() -> None:
    log = (
        "edgekit agent: device d1, boot abc, broker mqtt://x:1\n"
        "edgekit agent: serving digits-v1 on litert-fp32; ready in 0.84 s\n"
    )
    assert parse_ready_line(log) == ("digits-v1 on litert-fp32", 0.84)
    assert parse_ready_line("edgekit agent: serving no model yet; ready in 2 s") == (
        "no model yet",
        2.0,
    )
    assert parse_ready_line("error: broker unreachable") is None


def test_median_run_takes_numeric_medians() -> None:
    runs = [
        {"startup_s": 3.0, "rss_mib": 50.0, "served": "a"},
        {"startup_s": 1.0, "rss_mib": 70.0, "served": "b"},
        {"startup_s": 2.0, "rss_mib": 60.0, "served": "c"},
    ]
    m = _median_run(runs)
    assert (m["startup_s"], m["rss_mib"], m["served"], m["runs"]) == (2.0, 60.0, "a", 3)


def test_every_ratio_names_its_baseline_and_only_mobilenet_has_the_target() -> None:
    rows = [
        {"model": m, "variant": "litert-fp32", "ratio_p50": 1.05} for m in ("mobilenetv2", "digits")
    ]
    fp = {
        "edge-only venv": {
            "agent": {"startup_s": 2.0, "rss_mib": 90.0},
            "bare": {"startup_s": 0.5, "rss_mib": 30.0},
        }
    }
    ratios = _overhead_ratios(rows) + footprint_ratios(fp)
    assert all(r["baseline"] and r["higher_is_better"] is False for r in ratios)
    assert [r["target"] for r in ratios[:2]] == [TARGET_RATIO, None]
    assert [r["value"] for r in ratios[2:]] == [4.0, 3.0]


def _edge_only_check() -> ModuleType:
    return load_script("edge_only_check")


def test_edge_only_check_reads_top_level_imports_from_the_import_log() -> None:
    script = _edge_only_check()
    log = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       120 |        120 |   _io\n"
        "import time:       300 |       4500 | numpy\n"
        "import time:        80 |         80 |     numpy.core._multiarray_umath\n"
        "import time:        90 |         90 | paho.mqtt.client\n"
        "edgekit agent: serving digits-v1 on litert-fp32; ready in 0.84 s\n"
    )
    assert script.imported_top_level(log) == {"_io", "numpy", "paho"}
    assert script.imported_top_level("no import log here") == set()


def test_edge_only_check_refuses_a_bad_broker_url(capsys: pytest.CaptureFixture[str]) -> None:
    script = _edge_only_check()
    assert script.main(["--broker", "http://nope"]) == 1
    assert "FAILED: --broker must look like mqtt://HOST:PORT" in capsys.readouterr().err


def test_edge_only_check_refuses_a_missing_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _edge_only_check()
    assert script.main(["--bundle", str(tmp_path / "none.ekb")]) == 1
    assert "does not exist" in capsys.readouterr().err
