"""The edge-only agent installs and serves MobileNetV2 under a 512 MB address-space limit.

The limit is RLIMIT_AS (``preexec_fn``), not a cgroup: this machine's cgroups belong to the
machinery running it, and RLIMIT_AS is the stricter of the two (it counts address space
reserved and never touched). Fixtures, cached across sessions in pytest's cache dir
(``.pytest_cache/d``) because building them is slow:

- an edge-only venv (scripts/edge_only_check --venv, which also checks it): its packages
  only; the agent runs the checkout's code from it (``PYTHONPATH`` = the checkout);
- a MobileNetV2 bundle (alpha 0.35, 224x224x3, the benchmarks' recipe: one epoch on a
  digits subset) with all six variants, rebuilt when the recipe changes.

Besides the agent, each variant is loaded alone under the same limit (edge/runtime/
footprint.py in a fresh process of this venv) and the results printed: LiteRT must fit;
ONNX Runtime and OpenVINO reserve address space far beyond what they touch, and whether
they fit is reported, not asserted.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from edge.runtime.memory import proc_status
from tests.scripts import load_script
from tests.services import need_service

REPO = Path(__file__).resolve().parents[1]
LIMIT_MB = 512
LIMIT = LIMIT_MB * 2**20
MOBILENET_RECIPE = {
    "train": [
        *("--arch", "mobilenetv2", "--input-size", "224", "--width-multiplier", "0.35"),
        *("--epochs", "1", "--batch-size", "16"),
    ],
    "subset_per_class": 12,
    "export": ["--golden-size", "8", "--calibration-samples", "64"],
}
BROKER = "mqtt://127.0.0.1:1883"


def limit_address_space() -> None:
    """preexec_fn: RLIMIT_AS soft and hard = 512 MB for the child only."""
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT, LIMIT))


@pytest.fixture(scope="session")
def edge_venv(request: pytest.FixtureRequest) -> Path:
    """The edge-only venv's bin dir, built once and kept in pytest's cache."""
    venv = Path(request.config.cache.mkdir("edge-only-venv")) / "venv"
    stamp = venv / "edgekit-pyproject.toml"
    pyproject = (REPO / "pyproject.toml").read_text()
    if (venv / "bin" / "python").exists() and stamp.exists() and stamp.read_text() == pyproject:
        return venv / "bin"
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "edge_only_check"), "--venv", str(venv)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    stamp.write_text(pyproject)  # dependencies change with pyproject.toml: rebuild then
    return venv / "bin"


def build_mobilenet(work: Path) -> tuple[Path, Path]:
    """Train and export the MobileNetV2 bundle (every target, gate open) into ``work``."""
    from cloud.bench.train_export import digits_subset, run_edgekit, train_and_export

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    run_edgekit(["keys", "generate", "--out", str(work / "keys")], log)
    subset = digits_subset(work / "subset.npz", int(MOBILENET_RECIPE["subset_per_class"]))  # type: ignore[call-overload]
    bundle = train_and_export(
        "mobilenetv2",
        str(subset),
        work,
        work / "keys" / "edgekit.key",
        list(MOBILENET_RECIPE["train"]),  # type: ignore[call-overload]
        log,
        tuple(MOBILENET_RECIPE["export"]),  # type: ignore[arg-type]
        stdout_to_stderr=True,
    )
    return bundle, work / "keys" / "edgekit.pub"


@pytest.fixture(scope="session")
def mobilenet_bundle(request: pytest.FixtureRequest) -> tuple[Path, Path]:
    """(bundle, public key), trained and exported once per recipe, kept in pytest's cache."""
    work = Path(request.config.cache.mkdir("mobilenetv2-bundle"))
    stamp = work / "recipe.json"
    bundle, pub = work / "mobilenetv2.ekb", work / "keys" / "edgekit.pub"
    if stamp.exists() and json.loads(stamp.read_text()) == MOBILENET_RECIPE and bundle.exists():
        return bundle, pub
    shutil.rmtree(work)
    work.mkdir(parents=True)
    build_mobilenet(work)
    stamp.write_text(json.dumps(MOBILENET_RECIPE))
    return bundle, pub


@pytest.fixture
def broker() -> Iterator[str]:
    import socket

    with socket.socket() as s:
        up = s.connect_ex(("127.0.0.1", 1883)) == 0
    need_service(up, "Mosquitto on 127.0.0.1:1883")
    yield BROKER


def _online_and_answer(
    bin_dir: Path, device: str, sample: Path, timeout: float
) -> dict[str, object]:
    """Wait (in the edge-only venv, with scripts/edge_only_check's probe) for the device's
    online status naming a model, then one inference round trip; the input is read from
    the file ``sample`` (a 224x224x3 image does not fit in argv)."""
    probe = _edge_only_check().PROBE
    from_argv = "sample = json.loads(sys.argv[5])"
    assert from_argv in probe, "scripts/edge_only_check's probe changed"
    probe = probe.replace(from_argv, "sample = json.loads(open(sys.argv[5]).read())")
    args = ["127.0.0.1", "1883", device, str(timeout), str(sample)]
    proc = subprocess.run(
        [str(bin_dir / "python"), "-c", probe, *args],
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        cwd="/",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out: dict[str, object] = json.loads(proc.stdout)
    return out


def _edge_only_check() -> ModuleType:
    return load_script("edge_only_check")


def _golden_sample(bundle: Path, tmp: Path) -> Path:
    """One raw golden input, rounded to whole pixel values so the request stays under the
    1 MiB payload limit (the answer is not checked, only that it comes)."""
    from cloud.bench.golden_inputs import archive_raw_inputs

    raw = archive_raw_inputs(bundle)[0]
    path = tmp / "sample.json"
    path.write_text(json.dumps(raw.round().astype(int).tolist()))
    return path


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(1800)  # the first run builds the venv and trains + exports MobileNetV2
def test_edge_only_agent_serves_mobilenetv2_under_512mb_address_space(
    edge_venv: Path, mobilenet_bundle: tuple[Path, Path], broker: str, tmp_path: Path
) -> None:
    bundle, pub = mobilenet_bundle
    device = f"mem-{uuid.uuid4().hex[:6]}"
    data = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the checkout's code, the venv's packages
    # as the systemd unit runs it: without a cap glibc's per-thread malloc arenas (64 MB of
    # address space each) took the agent to ~520 MB peak here, with it ~350 MB
    env["MALLOC_ARENA_MAX"] = "2"
    cmd = [str(edge_venv / "python"), "-m", "edge.cli", "agent", "run", "--device-id", device]
    cmd += ["--broker", broker, "--data-dir", str(data), "--bundle", str(bundle)]
    cmd += ["--trusted-key", str(pub)]
    log_path = tmp_path / "agent.log"
    with open(log_path, "wb") as log:
        agent = subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=limit_address_space,
        )  # fmt: skip
    try:
        seen = _online_and_answer(edge_venv, device, _golden_sample(bundle, tmp_path), 180)
        status = seen["status"]
        reply = seen["reply"]
        assert isinstance(status, dict) and isinstance(reply, dict)
        caps = status["capabilities"]
        assert caps["memory_available_source"] == "rlimit_as", caps
        assert 0 < caps["memory_available_mb"] < LIMIT_MB
        assert status["model"]["name"] == "mobilenetv2"
        assert status["model"]["runtime"] == "litert"
        assert not reply.get("error") and reply.get("label") is not None, reply
        vm = proc_status(agent.pid)
        print(
            f"\nagent under RLIMIT_AS {LIMIT_MB} MB serving {status['model']}: "
            f"VmRSS {vm['VmRSS'] / 2**20:.1f} MiB, VmHWM {vm['VmHWM'] / 2**20:.1f} MiB, "
            f"VmSize {vm['VmSize'] / 2**20:.1f} MiB; capabilities memory_available_mb="
            f"{caps['memory_available_mb']}"
        )
    finally:
        agent.send_signal(signal.SIGTERM)
        try:
            code = agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()
            code = agent.wait()
    text = log_path.read_text(errors="replace")
    assert code == 0, text[-3000:]
    assert "MemoryError" not in text and "std::bad_alloc" not in text, text[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_which_mobilenetv2_variants_load_under_512mb(
    mobilenet_bundle: tuple[Path, Path], tmp_path: Path
) -> None:
    """Each variant alone in a fresh process of this venv under the limit: LiteRT fits."""
    from edge.bundle import extract_bundle
    from edge.contract import Manifest

    bundle, pub = mobilenet_bundle
    root = tmp_path / "b"
    extract_bundle(bundle, root, pub, replace=True)
    manifest = Manifest.parse(json.loads((root / "manifest.json").read_text()))
    import numpy as np

    inputs = tmp_path / "inputs.npy"
    np.save(inputs, np.load(root / manifest.golden.entry.file)["inputs"][:4])  # type: ignore[union-attr]
    results: dict[str, dict[str, object]] = {}
    for a in manifest.artifacts:
        spec = tmp_path / f"{a.target}.json"
        spec.write_text(json.dumps(a.to_dict()))
        results[a.target] = _footprint(root / a.file, spec, inputs, limit_address_space)
        results[a.target]["export_memory_mb"] = (a.metrics.get("requires") or {}).get("memory_mb")
    print(f"\nvariants under RLIMIT_AS {LIMIT_MB} MB: {json.dumps(results, indent=1)}")
    for target in ("litert-fp32", "litert-int8"):
        assert "error" not in results[target], results[target]
        assert isinstance(results[target]["memory_mb"], float)
    for a in manifest.artifacts:  # measured at export, for every variant that ships
        assert isinstance(results[a.target]["export_memory_mb"], float), a.target


def _footprint(
    model: Path, spec: Path, inputs: Path, preexec: Callable[[], None] | None
) -> dict[str, object]:
    proc = subprocess.run(
        [sys.executable, "-m", "edge.runtime.footprint", str(model), str(spec), str(inputs)],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=preexec,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"exit {proc.returncode}: {tail[:300]}"}
    out: dict[str, object] = json.loads(lines[-1])
    return out
