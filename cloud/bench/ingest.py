"""Telemetry ingestion: messages the hub persists per second, against a bare subscriber.

The same stream (M simulated devices, K ``edgekit.telemetry/1`` messages each, QoS 1, built
from a real Monitor snapshot) is published twice through one private Mosquitto:

* baseline: a bare paho subscriber (MQTT 3.1.1, paho's cheapest path) that only decodes
  each payload (json.loads), in its own process like the hub — rate = messages / time from
  the first publish until it decoded the last one;
* measured: ``edgekit hub serve`` (SQLite, WAL; its writer in a child process) — rate =
  rows in ``telemetry_raw`` / time from the first publish until the last row is committed;
  CPU = the hub and its children.

Quick runs publish 10,000 messages (200 devices x 50) once; full runs 20,000 (500 x 40),
alternating baseline and hub three times: the ratio is the median of the rounds' ratios.

Both sides start timing only once they are ready: the subscriber after its SUBACK, the hub
after a warm-up message made the whole round trip into the database (start-up, migrations
and subscriptions are not measured). While the hub ingests, a probe times
``GET /api/v1/devices`` and a device's telemetry query at a bounded 10 calls/s, so the
report shows API latency under that load without the probe competing for the hub's CPU.
Target ratio: ≥ 0.5.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from cloud.bench.runner import BenchContext
from cloud.demo.broker import free_port, wait_for_port
from cloud.demo.fleet import edgekit, last_line, spawn
from edge import contract
from edge.serving import Monitor

PROBE_CALLS_PER_S = 10


def telemetry_stream(devices: int, per_device: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """Pre-encoded telemetry messages, interleaved across devices like a real fleet."""
    rng = np.random.default_rng(seed)
    labels = [str(i) for i in range(10)]
    mon = Monitor(labels)
    for _ in range(200):
        scores = rng.dirichlet(np.ones(10))
        mon.record(float(rng.gamma(2.0, 0.3)), scores, None, str(int(scores.argmax())))
    metrics = mon.snapshot(time.time())
    model = contract.ModelRef("digits", 1, "litert", "int8")
    prefix = f"ingest-{uuid.uuid4().hex[:6]}"
    out = []
    for seq in range(1, per_device + 1):
        for d in range(devices):
            dev = f"{prefix}-{d:04d}"
            t = contract.Telemetry(
                device=dev, ts=time.time(), seq=seq, model=model, metrics=metrics, boot="bench"
            )
            out.append((contract.topic(dev, contract.TELEMETRY), contract.encode_json(t.to_dict())))
    return out


def _client(url: str, name: str) -> Any:
    import paho.mqtt.client as mqtt

    u = urlparse(url)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:6]}")
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect(u.hostname or "127.0.0.1", u.port or 1883)
    c.loop_start()
    return c


def publish_all(url: str, stream: list[tuple[str, bytes]]) -> float:
    """Publish the stream with QoS 1; returns the wall time the first message went out."""
    c = _client(url, "bench-pub")
    start = time.perf_counter()
    infos = [c.publish(topic, payload, qos=1) for topic, payload in stream]
    for info in infos[-100:]:
        info.wait_for_publish(60)
    c.loop_stop()
    c.disconnect()
    return start


def bare_subscriber(url: str, n: int) -> None:
    """The baseline, run as its own process (``python -m cloud.bench.ingest URL N``):
    prints ``ready`` after its SUBACK, then the ``time.perf_counter()`` (CLOCK_MONOTONIC,
    comparable across processes) at which it decoded the n-th message."""
    got = 0
    done, subscribed = threading.Event(), threading.Event()
    last = [0.0]

    def on_message(_c: Any, _u: Any, m: Any) -> None:
        nonlocal got
        json.loads(m.payload)
        got += 1
        if got == n:
            last[0] = time.perf_counter()
            done.set()

    sub = _client(url, "bench-sub")
    sub.on_message = on_message
    sub.on_subscribe = lambda *_a: subscribed.set()
    sub.subscribe(contract.topic_filter(contract.TELEMETRY), qos=1)
    if not subscribed.wait(30):
        raise SystemExit("error: the broker did not acknowledge the subscription")
    print("ready", flush=True)
    cpu0 = time.process_time()
    if not done.wait(300):
        raise SystemExit(f"error: bare subscriber got {got} of {n} messages")
    print(f"{last[0]!r} {time.process_time() - cpu0!r}", flush=True)
    sub.loop_stop()
    sub.disconnect()


def baseline_rate(url: str, stream: list[tuple[str, bytes]]) -> tuple[float, float]:
    """Messages per second a subscriber that only decodes achieves on this stream, and
    its CPU seconds per message."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloud.bench.ingest", url, str(len(stream))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the bare subscriber did not start")
        start = publish_all(url, stream)
        last, cpu = (float(x) for x in proc.stdout.readline().split())
        return len(stream) / (last - start), cpu / len(stream)
    finally:
        proc.wait(30)


def _count_rows(db_file: Path) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=5) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM telemetry_raw").fetchone()[0])
    except sqlite3.Error:
        return 0


class ApiProbe(threading.Thread):
    """Time API calls in a loop while the hub ingests (bounded by ``stop``)."""

    def __init__(self, hub: str, token: str, device: str) -> None:
        super().__init__(daemon=True)
        self.hub, self.token, self.device = hub, token, device
        self.samples: dict[str, list[float]] = {"devices": [], "telemetry": []}
        self.stop = threading.Event()

    def _get(self, name: str, path: str) -> None:
        """Time one call; a 404 (the probed device has not reported yet) is not a sample."""
        req = urllib.request.Request(
            self.hub + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        t = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
            return
        self.samples[name].append((time.perf_counter() - t) * 1000)

    def run(self) -> None:
        """Two calls every 0.2 s (10 calls/s) until stopped."""
        next_at = time.perf_counter()
        while not self.stop.is_set():
            self._get("devices", "/api/v1/devices")
            self._get("telemetry", f"/api/v1/devices/{self.device}/telemetry?limit=100")
            next_at += 2 / PROBE_CALLS_PER_S
            self.stop.wait(max(0.0, next_at - time.perf_counter()))


def warm_up(url: str, db_file: Path, timeout: float = 60.0) -> None:
    """Publish one telemetry message (again, until it lands) and wait until the hub stored
    it: from then on the hub is subscribed and its writer runs, so start-up is not timed."""
    stream = telemetry_stream(1, 1, seed=2)
    deadline = time.perf_counter() + timeout
    while _count_rows(db_file) < 1:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"the hub stored no warm-up message in {timeout:.0f} s")
        publish_all(url, stream)  # the same device/seq: a repeat is dropped as a duplicate
        for _ in range(20):
            if _count_rows(db_file) >= 1:
                return
            time.sleep(0.05)


def _cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (the hub's writer process)."""
    import psutil

    proc = psutil.Process(pid)
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.Error:  # ended meanwhile
            continue
        total += t.user + t.system
    return total


def hub_rate(ctx: BenchContext, stream: list[tuple[str, bytes]]) -> tuple[float, float, ApiProbe]:
    """Messages per second the hub persists, its CPU seconds per message (all threads,
    API probe included) and the probe's samples."""
    assert ctx.broker is not None
    work = ctx.workdir("ingest") / uuid.uuid4().hex[:6]
    work.mkdir(parents=True)
    db_file = work / "hub.db"
    common = ["--db", f"sqlite:///{db_file}", "--data-dir", str(work)]
    token = last_line(edgekit("hub", "create-token", "--role", "viewer", *common))
    port = free_port()
    hub = spawn(
        "hub",
        ["hub", "serve", *common, "--broker", ctx.broker, "--port", str(port)],
        work / "hub.log",
    )
    try:
        if not wait_for_port("127.0.0.1", port, 60):
            raise RuntimeError(f"hub did not start; see {work / 'hub.log'}")
        warm_up(ctx.broker, db_file)
        url = f"http://127.0.0.1:{port}"
        device = json.loads(stream[0][1])["device"]
        probe = ApiProbe(url, token, device)
        n = len(stream) + 1  # + the warm-up row
        cpu0 = _cpu_seconds(hub.proc.pid)
        probe.start()
        start = publish_all(ctx.broker, stream)
        deadline = time.perf_counter() + 300
        while (rows := _count_rows(db_file)) < n:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"hub persisted {rows} of {n} messages in 300 s")
            time.sleep(0.01)  # the end time is known to 10 ms
        end = time.perf_counter()
        cpu = _cpu_seconds(hub.proc.pid) - cpu0
        probe.stop.set()
        probe.join(30)
        return (n - 1) / (end - start), cpu / (n - 1), probe
    finally:
        hub.stop()


def run(ctx: BenchContext) -> dict[str, Any]:
    # Streams long enough (10-20k messages, seconds each) that start-up transients do not
    # dominate; the full run alternates baseline and hub three times and reports medians.
    devices, per, rounds = (200, 50, 1) if ctx.quick else (500, 40, 3)
    assert ctx.broker is not None
    bases: list[float] = []
    base_cpus: list[float] = []
    rates: list[float] = []
    hub_cpus: list[float] = []
    samples: dict[str, list[float]] = {"devices": [], "telemetry": []}
    for r in range(rounds):
        stream = telemetry_stream(devices, per, seed=2 * r)
        ctx.log(f"round {r + 1}/{rounds}: {len(stream)} telemetry messages from {devices} devices")
        base, base_cpu = baseline_rate(ctx.broker, stream)
        ctx.log(f"  bare decoding subscriber: {base:,.0f} msg/s, {base_cpu * 1e6:.0f} us CPU/msg")
        rate, hub_cpu, probe = hub_rate(ctx, telemetry_stream(devices, per, seed=2 * r + 1))
        ctx.log(f"  hub persisted: {rate:,.0f} msg/s, {hub_cpu * 1e6:.0f} us CPU/msg "
                f"(ratio {rate / base:.2f})")  # fmt: skip
        bases.append(base)
        base_cpus.append(base_cpu)
        rates.append(rate)
        hub_cpus.append(hub_cpu)
        for k, v in probe.samples.items():
            samples[k] += v
    ratio = float(np.median([h / b for h, b in zip(rates, bases, strict=True)]))
    base, rate = float(np.median(bases)), float(np.median(rates))
    base_cpu, hub_cpu = float(np.median(base_cpus)), float(np.median(hub_cpus))

    def pct(v: list[float], q: float) -> float | None:
        return float(np.percentile(v, q)) if v else None

    rows = [[name, len(v), pct(v, 50), pct(v, 95)] for name, v in samples.items()]
    return {
        "data": {
            "messages": devices * per,
            "devices": devices,
            "rounds": rounds,
            "baseline_msg_s": base,
            "hub_msg_s": rate,
            "baseline_msg_s_rounds": bases,
            "hub_msg_s_rounds": rates,
            "baseline_cpu_us_per_msg": base_cpu * 1e6,
            "hub_cpu_us_per_msg": hub_cpu * 1e6,
            "api_ms": {k: {"p50": pct(v, 50), "p95": pct(v, 95)} for k, v in samples.items()},
        },
        "ratios": [
            {
                "name": "telemetry persisted / bare decode",
                "value": ratio,
                "baseline": f"bare paho subscriber, {base:,.0f} msg/s",
                "target": 0.5,
            },
            {
                # the same comparison in CPU time: steadier than wall-clock rates on a
                # machine other jobs share, and what bounds the rate once cores are busy
                "name": "CPU per message: bare decode / hub persist",
                "value": base_cpu / hub_cpu if hub_cpu > 0 else None,
                "baseline": f"bare paho subscriber, {base_cpu * 1e6:.0f} us/msg",
            },
        ],
        "tables": [
            {
                "title": "Telemetry ingestion",
                "columns": ["path", "msg/s", "CPU us/msg"],
                "rows": [
                    ["bare paho subscriber (decode only)", base, base_cpu * 1e6],
                    ["hub: parse + validate + persist (SQLite WAL)", rate, hub_cpu * 1e6],
                ],
            },
            {
                "title": "API latency while ingesting (ms)",
                "columns": ["endpoint", "calls", "p50", "p95"],
                "rows": rows,
            },
        ],
    }


if __name__ == "__main__":
    bare_subscriber(sys.argv[1], int(sys.argv[2]))
