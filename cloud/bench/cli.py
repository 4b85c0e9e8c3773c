"""`edgekit bench [--quick] --out DIR [--only NAMES]`: run the benchmarks, write a report.

Each benchmark is a module in cloud.bench with ``run(ctx: BenchContext) -> dict``; the
report (bench.json + bench.md + charts) is assembled by cloud.bench.report. Benchmarks are
never tests: they measure ratios against a baseline taken in the same run, so a slower
or busier machine moves both sides together.
"""

from __future__ import annotations

import argparse
from typing import Any

from cloud.bench.runner import BENCHMARKS, run_benchmarks


def register(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "bench",
        help="run the benchmarks and write bench.json and a markdown report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--out", required=True, help="output directory for bench.json, bench.md")
    p.add_argument("--quick", action="store_true", help="smaller models and fewer runs")
    p.add_argument(
        "--only",
        default=",".join(BENCHMARKS),
        help=f"comma-separated subset of: {', '.join(BENCHMARKS)}",
    )
    p.add_argument("--broker", default=None, help="MQTT broker URL (default: embedded)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:

    return run_benchmarks(args.out, args.only, quick=args.quick, broker=args.broker)
