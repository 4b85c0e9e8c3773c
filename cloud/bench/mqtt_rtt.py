"""MQTT request-to-response latency of a real agent, against an echo through the same broker.

Baseline: a bare paho client that republishes each ``infer/req`` payload on ``infer/res``
(broker + client round trip, no model). Measured: ``edgekit agent run`` serving the digits
reference bundle. Both are driven by the same requester, sequentially, one request in
flight, so the difference is the agent's decode + validate + infer + encode.
"""

from __future__ import annotations

import json
import operator
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from cloud.bench.golden_inputs import archive_raw_inputs
from cloud.bench.runner import BenchContext
from edge import contract

REPO = Path(__file__).resolve().parents[2]


def _client(url: str, cid: str) -> Any:
    import paho.mqtt.client as mqtt

    u = urlparse(url)
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid)
    c.connect(u.hostname or "127.0.0.1", u.port or 1883)
    c.loop_start()
    return c


class Requester:
    """Send requests one at a time and time each reply, matched by id."""

    def __init__(self, url: str, device: str) -> None:
        self.device = device
        self._replies: dict[str, float] = {}
        self._cond = threading.Condition()
        self.client = _client(url, f"bench-req-{uuid.uuid4().hex[:8]}")
        self.client.on_message = self._on_message
        self.client.subscribe(contract.topic(device, contract.INFER_RES), qos=0)
        time.sleep(0.3)

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        now = time.perf_counter()
        try:
            rid = str(json.loads(msg.payload)["id"])
        except (ValueError, KeyError, TypeError):
            return
        with self._cond:
            self._replies[rid] = now
            self._cond.notify_all()

    def round_trips(self, payloads: list[Any], timeout: float = 10.0) -> list[float]:
        out: list[float] = []
        req_topic = contract.topic(self.device, contract.INFER_REQ)
        for i, inputs in enumerate(payloads):
            rid = f"r{i}"
            body = contract.encode_json({"id": rid, "inputs": inputs})
            start = time.perf_counter()
            self.client.publish(req_topic, body, qos=0)
            with self._cond:
                ok = self._cond.wait_for(partial(operator.contains, self._replies, rid), timeout)
                if not ok:
                    raise TimeoutError(f"no reply to request {rid} within {timeout} s")
                out.append((self._replies.pop(rid) - start) * 1000)
        return out

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def start_echo(url: str, device: str) -> Any:
    """The baseline: republish every request unchanged as the response."""
    c = _client(url, f"bench-echo-{uuid.uuid4().hex[:8]}")
    res = contract.topic(device, contract.INFER_RES)

    def on_message(_c: Any, _u: Any, m: Any) -> None:
        c.publish(res, m.payload, qos=0)

    c.on_message = on_message
    c.subscribe(contract.topic(device, contract.INFER_REQ), qos=0)
    time.sleep(0.3)
    return c


def start_agent(url: str, device: str, data_dir: Path, bundle: Path, key: Path) -> Any:
    cmd = [
        sys.executable,
        "-m",
        "edge.cli",
        "agent",
        "run",
        "--device-id",
        device,
        "--broker",
        url,
        "--data-dir",
        str(data_dir),
        "--bundle",
        str(bundle),
        "--trusted-key",
        str(key),
    ]
    log = open(data_dir / "agent.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_online(url: str, device: str, timeout: float = 60.0) -> None:
    got = threading.Event()
    c = _client(url, f"bench-wait-{uuid.uuid4().hex[:8]}")

    def on_message(_c: Any, _u: Any, m: Any) -> None:
        try:
            status = contract.Status.parse(contract.decode_json(m.payload))
        except Exception:
            return
        if status.state == "online" and status.model is not None:
            got.set()

    c.on_message = on_message
    c.subscribe(contract.topic(device, contract.STATUS), qos=1)
    ok = got.wait(timeout)
    c.loop_stop()
    c.disconnect()
    if not ok:
        raise TimeoutError(f"agent {device} did not report online with a model in {timeout} s")


def _pct(values: list[float]) -> dict[str, float]:
    a = np.asarray(values)
    return {
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "mean": float(a.mean()),
    }


def run(ctx: BenchContext) -> dict[str, Any]:
    assert ctx.broker is not None
    n = 200 if ctx.quick else 1000
    bundle, key = REPO / "models" / "digits.ekb", REPO / "models" / "dev-signing.pub"
    golden = [x.tolist() for x in archive_raw_inputs(bundle)]
    payloads = [golden[i % len(golden)] for i in range(n)]

    echo_dev = f"bench-echo-{uuid.uuid4().hex[:6]}"
    echo = start_echo(ctx.broker, echo_dev)
    req = Requester(ctx.broker, echo_dev)
    req.round_trips(payloads[:20])  # warm-up
    ctx.log(f"echo baseline: {n} round trips")
    echo_ms = req.round_trips(payloads)
    req.close()
    echo.loop_stop()
    echo.disconnect()

    agent_dev = f"bench-agent-{uuid.uuid4().hex[:6]}"
    data_dir = ctx.workdir("mqtt") / agent_dev
    data_dir.mkdir(parents=True, exist_ok=True)
    proc = start_agent(ctx.broker, agent_dev, data_dir, bundle, key)
    try:
        wait_online(ctx.broker, agent_dev)
        req = Requester(ctx.broker, agent_dev)
        req.round_trips(payloads[:20])
        ctx.log(f"agent: {n} round trips")
        agent_ms = req.round_trips(payloads)
        req.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    e, a = _pct(echo_ms), _pct(agent_ms)
    return {
        "data": {"requests": n, "echo_ms": e, "agent_ms": a},
        "ratios": [
            {
                "name": "MQTT round trip p50, agent / echo",
                "value": a["p50"] / e["p50"],
                "baseline": "echo client through the same broker",
                "higher_is_better": False,
            },
        ],
        "tables": [
            {
                "title": "MQTT request-to-response latency (ms)",
                "columns": ["path", "p50", "p99", "mean"],
                "rows": [
                    ["echo (baseline)", e["p50"], e["p99"], e["mean"]],
                    ["agent, digits bundle", a["p50"], a["p99"], a["mean"]],
                ],
            }
        ],
    }
