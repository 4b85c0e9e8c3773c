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

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from cloud.bench.runner import BenchContext
from edge import contract

REPO = Path(__file__).resolve().parents[2]

BARE_CODE = "import numpy, paho.mqtt.client, sys; print('ready', flush=True); sys.stdin.read()"


def parse_proc_status(text: str) -> dict[str, int]:
    """``VmRSS`` / ``VmHWM`` (and any other ``Vm*``) of /proc/PID/status, in KiB."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"^(Vm\w+):\s+(\d+)\s+kB\s*$", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


_READY = re.compile(r"serving (?P<what>.+?); ready in (?P<s>\d+(?:\.\d+)?) s")


def parse_ready_line(text: str) -> tuple[str, float] | None:
    """``(what is served, seconds)`` from the agent's "serving X; ready in N s" line."""
    m = _READY.search(text)
    return (m.group("what"), float(m.group("s"))) if m else None


def rss_mib(pid: int) -> dict[str, float]:
    """Resident (VmRSS) and peak resident (VmHWM) memory of a live process, MiB."""
    kib = parse_proc_status(Path(f"/proc/{pid}/status").read_text())
    return {"rss_mib": kib.get("VmRSS", 0) / 1024, "peak_rss_mib": kib.get("VmHWM", 0) / 1024}


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
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Start one agent, time it to online, serve for ``serve_s``, read its memory, stop it.

    ``env``: extra environment for the agent (``EDGEKIT_PIN_RUNTIME`` ... to pin a variant)."""
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
            cmd,
            cwd=work,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **env} if env else None,
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


def edge_venv(ctx: BenchContext, bundle: Path, pub: Path) -> tuple[Path | None, str]:
    """The edge-only venv's bin dir (``EDGEKIT_EDGE_VENV`` or OUT/work/agent/edge-venv),
    built with scripts/edge_only_check when missing and not ``--quick``; and a note."""
    given = os.environ.get("EDGEKIT_EDGE_VENV")
    venv = Path(given) if given else ctx.workdir("agent") / "edge-venv"
    if (venv / "bin" / "edgekit").exists():
        return venv / "bin", f"edge-only venv: {venv} (reused)"
    if given or ctx.quick:
        return None, f"no edge-only venv at {venv}; run scripts/edge_only_check --venv {venv}"
    ctx.log(f"building an edge-only venv with scripts/edge_only_check --venv {venv}")
    check = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "edge_only_check"),
            *("--venv", str(venv), "--broker", str(ctx.broker)),
            *("--bundle", str(bundle), "--key", str(pub)),
        ]
    )
    if check.returncode != 0 or not (venv / "bin" / "edgekit").exists():
        return None, f"scripts/edge_only_check failed (exit {check.returncode}); see its output"
    return venv / "bin", f"edge-only venv: {venv} (built; scripts/edge_only_check passed)"


def measure_footprints(ctx: BenchContext, bundle: Path, pub: Path) -> tuple[dict[str, Any], str]:
    """Footprints from this venv and the edge-only one (when there is one); and a note."""
    from cloud.bench.golden_inputs import raw_inputs
    from edge.bundle import extract_bundle
    from edge.contract import Manifest

    assert ctx.broker is not None
    extracted = ctx.workdir("agent") / "digits-extracted"
    extract_bundle(bundle, extracted, pub, replace=True)
    manifest = Manifest.parse(json.loads((extracted / "manifest.json").read_text()))
    inputs = [s.tolist() for s in raw_inputs(extracted, manifest)]
    venvs: dict[str, Path] = {"this venv (all extras)": Path(sys.executable).parent}
    edge_bin, note = edge_venv(ctx, bundle, pub)
    if edge_bin is not None:
        venvs["edge-only venv"] = edge_bin
    out = {}
    for label, bin_dir in venvs.items():
        ctx.log(f"start-up and RSS: {label}")
        out[label] = footprint(
            bin_dir,
            ctx.broker,
            bundle,
            pub,
            ctx.workdir("agent") / "footprint",
            inputs,
            repeats=2 if ctx.quick else 3,
        )
    return out, note


def footprint_ratios(fp: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for label, res in fp.items():
        a, b = res["agent"], res["bare"]
        for key, what in (("startup_s", "start-up"), ("rss_mib", "RSS")):
            out.append(
                {
                    "name": f"agent {what}, {label} / bare python",
                    "value": round(a[key] / b[key], 3),
                    "baseline": 'python -c "import numpy, paho.mqtt.client", same interpreter',
                    "target": None,
                    "higher_is_better": False,
                    "unit": "x",
                }
            )
    return out
