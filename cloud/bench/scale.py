"""Fleet scale: a 3-wave rollout to 1,000 simulated devices, and the hub's load meanwhile.

``edgekit hub serve`` and ``edgekit simulate`` run as separate processes on one private
Mosquitto. We measure (1) the hub's CPU and resident memory while every device reports
telemetry every 10 s, and (2) the time from creating a rollout (waves 10 %, 50 %, 100 %,
no soak) until every device reports the new version committed. The baseline of the
rollout time is the same rollout to a 10x smaller fleet in the same run, so the ratio says
how the hub scales, not how fast this machine is.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from cloud.bench.runner import BenchContext
from cloud.demo.broker import free_port, wait_for_port
from cloud.demo.fleet import HubClient, Process, edgekit, last_line, spawn, wait_until

REPO = Path(__file__).resolve().parents[2]


def _hub(ctx: BenchContext, work: Path, key: Path, db: str) -> tuple[Process, HubClient]:
    assert ctx.broker is not None
    common = ["--db", db, "--data-dir", str(work)]
    token = last_line(edgekit("hub", "create-token", "--role", "operator", *common))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    hub = spawn(
        "hub",
        [
            "hub",
            "serve",
            *common,
            "--broker",
            ctx.broker,
            "--port",
            str(port),
            "--trusted-key",
            str(key),
            "--public-url",
            url,
        ],
        work / "hub.log",
    )
    if not wait_for_port("127.0.0.1", port, 60):
        hub.stop()
        raise RuntimeError(f"hub did not start; see {work / 'hub.log'}")
    return hub, HubClient(url, token)


def _online(api: HubClient, prefix: str) -> list[str]:
    """Ids of the simulated devices the hub shows online (they are not enrolled, so they
    carry no hub tags: they are picked by their id prefix)."""
    devices = api.call("GET", "/api/v1/devices")
    return [d["id"] for d in devices if d["id"].startswith(prefix + "-") and d["online"]]


def _ingest_lag(db: str, seconds: float) -> dict[str, float]:
    """How far the hub's stored telemetry trails the devices, sampled once a second: now
    minus the newest stored report's device timestamp. Ingest is first in, first out, so
    this is the queueing delay (plus up to one report interval's spacing when few devices
    report); the issue's bound is 5 s at 10,000 devices."""
    from sqlalchemy import create_engine, text

    from cloud.hub.storage.db import normalize_url

    engine = create_engine(normalize_url(db))
    lags: list[float] = []
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            with engine.connect() as conn:
                newest = conn.execute(text("SELECT max(ts) FROM telemetry_raw")).scalar()
            if newest is not None:
                lags.append(max(0.0, time.time() - float(newest)))
            time.sleep(1.0)
    finally:
        engine.dispose()
    if not lags:
        return {}
    lags.sort()
    return {
        "ingest_lag_s_p50": lags[len(lags) // 2],
        "ingest_lag_s_max": lags[-1],
    }


def _sample_process(pid: int, seconds: float) -> dict[str, float]:
    import psutil

    proc = psutil.Process(pid)
    procs = [proc, *proc.children(recursive=True)]
    for p in procs:
        p.cpu_percent(None)
    cpu, rss = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(1.0)
        cpu.append(sum(p.cpu_percent(None) for p in procs if p.is_running()))
        rss.append(sum(p.memory_info().rss for p in procs if p.is_running()) / 2**20)
    return {
        "cpu_percent_mean": sum(cpu) / len(cpu),
        "cpu_percent_max": max(cpu),
        "rss_mb_max": max(rss),
    }


def rollout_time(
    ctx: BenchContext, devices: int, measure_load: float, db: str | None = None
) -> dict[str, Any]:
    """Hub (on ``db``, default a fresh SQLite file) + simulator with ``devices`` devices;
    returns timings and hub load."""
    assert ctx.broker is not None
    bundle = REPO / "models" / "digits.ekb"
    key = REPO / "models" / "dev-signing.pub"
    work = ctx.workdir("scale") / f"{devices}-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    hub_db = db or f"sqlite:///{work / 'hub.db'}"
    hub, api = _hub(ctx, work, key, hub_db)
    tag = f"scale{uuid.uuid4().hex[:6]}"
    sim = None
    try:
        up = api.upload(bundle)
        sim = spawn(
            "sim",
            [
                "simulate",
                "--devices",
                str(devices),
                "--broker",
                ctx.broker,
                "--token",
                api.token,
                "--trusted-key",
                str(key),
                "--prefix",
                tag,
                "--tags",
                tag,
                "--telemetry-interval",
                "10",
                "--probation",
                "1",
                "--hub",
                api.url,
            ],
            work / "sim.log",
        )
        t0 = time.monotonic()
        wait_until(
            f"{devices} simulated devices online",
            lambda: len(_online(api, tag)) >= devices,
            timeout=60 + devices * 0.2,
            interval=1.0,
        )
        connect_s = time.monotonic() - t0
        ctx.log(f"{devices} devices online in {connect_s:.1f} s")
        t1 = time.monotonic()
        created = api.call(
            "POST",
            "/api/v1/rollouts",
            {
                "model": up["name"],
                "version": up["version"],
                "target": {"devices": sorted(_online(api, tag))},
                "waves": [10, 50, 100],
                # rollout mechanics at scale, not model health: simulated devices serve a
                # few inferences per report, too few for the gates' minimum samples
                "gates": {
                    "error_rate": None,
                    "p95_latency_ms": None,
                    "drift": None,
                    "accuracy": None,
                },
                "soak_seconds": 0,
                "deploy_timeout_s": 600,
            },
        )

        def done() -> dict[str, Any] | None:
            r = api.call("GET", f"/api/v1/rollouts/{created['id']}")
            if r["state"] in ("aborted", "rolled_back", "paused"):
                raise RuntimeError(f"rollout ended {r['state']}: {r['audit'][-1:]}")
            return r if r["state"] == "completed" else None

        final = wait_until("the rollout to complete", done, timeout=120 + devices, interval=1.0)
        rollout_s = time.monotonic() - t1
        ctx.log(f"3-wave rollout to {devices} devices: {rollout_s:.1f} s")
        # Devices report telemetry only once they serve a model, so the steady load is
        # measured after the rollout: every device reports every 10 s.
        load: dict[str, float] = {}
        if measure_load:
            lag: dict[str, float] = {}
            sampler = threading.Thread(
                target=lambda: lag.update(_ingest_lag(hub_db, measure_load)), daemon=True
            )
            sampler.start()
            load = _sample_process(hub.proc.pid, measure_load)
            sampler.join(measure_load + 30)
            load.update(lag)
            ctx.log(
                f"hub while {devices} devices report every 10 s: "
                f"{load['cpu_percent_mean']:.1f} % CPU (of one core), "
                f"{load['rss_mb_max']:.0f} MB, ingest lag p50 "
                f"{load.get('ingest_lag_s_p50', float('nan')):.2f} s, max "
                f"{load.get('ingest_lag_s_max', float('nan')):.2f} s"
            )
        return {
            "devices": devices,
            "connect_s": connect_s,
            "rollout_s": rollout_s,
            "committed": final["committed"],
            **load,
        }
    finally:
        if sim is not None:
            sim.stop(timeout=60)
        hub.stop()


def run(ctx: BenchContext) -> dict[str, Any]:
    n = int(os.environ.get("EDGEKIT_BENCH_SCALE_DEVICES", 200 if ctx.quick else 1000))
    # an empty database for the hub (PostgreSQL for 10,000 devices); default: SQLite files
    db = os.environ.get("EDGEKIT_BENCH_SCALE_DB") or None
    small = rollout_time(ctx, max(10, n // 10), measure_load=0, db=db)
    big = rollout_time(ctx, n, measure_load=15 if ctx.quick else 30, db=db)
    per_dev_small = small["rollout_s"] / small["devices"]
    per_dev_big = big["rollout_s"] / big["devices"]
    return {
        "data": {"small": small, "big": big},
        "ratios": [
            {
                "name": f"rollout seconds per device, {n} vs {small['devices']} devices",
                "value": per_dev_big / per_dev_small,
                "baseline": f"same rollout to {small['devices']} devices",
                "higher_is_better": False,
                "target": 1.0,
            }
        ],
        "tables": [
            {
                "title": "Fleet scale (simulated devices, real MQTT sessions, real installs)",
                "columns": [
                    "devices",
                    "online after s",
                    "3-wave rollout s",
                    "hub CPU % mean",
                    "hub CPU % max",
                    "hub RSS MB",
                ],
                "rows": [
                    [
                        r["devices"],
                        r["connect_s"],
                        r["rollout_s"],
                        r.get("cpu_percent_mean"),
                        r.get("cpu_percent_max"),
                        r.get("rss_mb_max"),
                    ]
                    for r in (small, big)
                ],
            }
        ],
        "notes": ["hub CPU % is of one core (200 % = both cores of this machine)"],
    }
