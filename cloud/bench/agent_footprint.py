"""Start-up time and resident memory of ``edgekit agent run``, against a bare Python process.

Agent: a fresh data dir and ``--bundle`` (so start-up includes verifying, extracting and
self-testing the bundle), started from a venv's ``edgekit`` script. Start-up is the wall
time from ``Popen`` until the retained ``online`` status naming a model reaches a
subscriber that was listening before the process started; memory is VmRSS (and the peak,
VmHWM) from /proc after ``serve_s`` seconds of answering MQTT inference requests.

Baseline: ``python -c "import numpy, paho.mqtt.client"`` run by the same interpreter,
which prints a line once imported and then waits on stdin: start-up is until that line,
memory is read at that point. The difference is what the agent itself costs.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from edge import contract

BARE_CODE = "import numpy, paho.mqtt.client, sys; print('ready', flush=True); sys.stdin.read()"


class StatusWatch:
    """Subscribe to a device's status topic; remember when it first says online + model."""

    def __init__(self, url: str, device: str) -> None:
        import paho.mqtt.client as mqtt

        self.online_at: float | None = None
        self._got = threading.Event()
        u = urlparse(url)
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-watch-{uuid.uuid4().hex[:8]}"
        )
        self._client.on_message = self._on_message
        self._client.connect(u.hostname or "127.0.0.1", u.port or 1883)
        self._client.subscribe(contract.topic(device, contract.STATUS), qos=1)
        self._client.loop_start()
        time.sleep(0.3)  # the subscription is in place before the agent starts

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        now = time.perf_counter()
        try:
            status = contract.Status.parse(contract.decode_json(msg.payload))
        except Exception:
            return
        if status.state == "online" and status.model is not None and not self._got.is_set():
            self.online_at = now
            self._got.set()

    def wait(self, timeout: float) -> float:
        if not self._got.wait(timeout) or self.online_at is None:
            raise TimeoutError(f"no online status with a model within {timeout:g} s")
        return self.online_at

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def serve_requests(url: str, device: str, inputs: list[Any], seconds: float) -> int:
    """Send one request at a time for ``seconds`` (about 20 per second); replies counted."""
    from cloud.bench.mqtt_rtt import Requester

    req = Requester(url, device)
    answered = 0
    end = time.perf_counter() + seconds
    try:
        while time.perf_counter() < end:
            req.round_trips([inputs[answered % len(inputs)]])
            answered += 1
            time.sleep(0.05)
    finally:
        req.close()
    return answered


def agent_once(
    edgekit: list[str],
    url: str,
    bundle: Path,
    key: Path,
    work: Path,
    inputs: list[Any],
    serve_s: float,
) -> dict[str, Any]:
    """Start one agent, time it to online, serve for ``serve_s``, read its memory, stop it."""
    from cloud.bench.agent import parse_ready_line, rss_mib

    device = f"bench-fp-{uuid.uuid4().hex[:6]}"
    data_dir = work / device
    data_dir.mkdir(parents=True)
    watch = StatusWatch(url, device)
    log_path = data_dir / "agent.log"
    cmd = [
        *edgekit,
        *("agent", "run", "--device-id", device, "--broker", url, "--data-dir", str(data_dir)),
        *("--bundle", str(bundle), "--trusted-key", str(key)),
    ]
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        try:
            startup_s = watch.wait(120) - t0
        finally:
            watch.close()
        answered = serve_requests(url, device, inputs, serve_s)
        mem = rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    ready = parse_ready_line(log_path.read_text(errors="replace"))
    return {
        "startup_s": startup_s,
        "agent_ready_s": ready[1] if ready else None,
        "served": ready[0] if ready else None,
        "requests_answered": answered,
        **mem,
    }


def bare_once(python: Path) -> dict[str, Any]:
    """The baseline process: import numpy and paho, say ready, read memory, exit."""
    from cloud.bench.agent import rss_mib

    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(python), "-c", BARE_CODE],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd="/",
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        line = proc.stdout.readline()
        startup_s = time.perf_counter() - t0
        if line.strip() != b"ready":
            raise RuntimeError(f"{python} cannot import numpy and paho.mqtt")
        mem = rss_mib(proc.pid)
    finally:
        proc.stdin.close()
        proc.wait(timeout=20)
    return {"startup_s": startup_s, **mem}


def _median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each numeric key over repeated runs (other keys from the first)."""
    out = dict(runs[0])
    for k, v in runs[0].items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            vals = [r[k] for r in runs if isinstance(r.get(k), (int, float))]
            out[k] = statistics.median(vals)
    out["runs"] = len(runs)
    return out


def footprint(
    venv_bin: Path,
    url: str,
    bundle: Path,
    key: Path,
    work: Path,
    inputs: list[Any],
    *,
    repeats: int,
    serve_s: float = 5.0,
) -> dict[str, Any]:
    """Agent and bare baseline from one venv's bin dir, ``repeats`` times each (medians)."""
    work.mkdir(parents=True, exist_ok=True)
    edgekit = [str(venv_bin / "edgekit")]
    python = venv_bin / "python"
    bare, agent = [], []
    for _ in range(repeats):  # alternate so both see the same machine
        bare.append(bare_once(python))
        agent.append(agent_once(edgekit, url, bundle, key, work, inputs, serve_s))
    return {"agent": _median_run(agent), "bare": _median_run(bare)}
