"""End to end: ``promtool check metrics`` on the hub's and the agents' ``/metrics``.

A real hub (``edgekit hub serve``: the bridge's writer in a process of its own, so the
counters cross processes through the database), two agent subprocesses on a private
Mosquitto, each replaying 300 inputs. Once every interval is reported, the hub's merged
latency histogram must be exactly the sum of the two agents' own histograms, and every
exposition must pass promtool's lint.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cloud.keys import generate_keypair
from tests import waiting
from tests.bundles import make_tabular_bundle
from tests.edge.brokers import PrivateBroker, free_port, private_broker  # noqa: F401 - fixture
from tests.services import need_service

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CLI = [sys.executable, "-m", "edge.cli"]
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
AGENTS = ("prom-a", "prom-b")
N = 300  # inputs each agent replays
wait_for = functools.partial(waiting.wait_for, interval=0.25)
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as resp:
        return str(resp.read().decode())


def parse(text: str) -> Samples:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def bucket_counts(got: Samples, name: str) -> dict[str, float]:
    return {dict(k)["le"]: v for (n, k), v in got.items() if n == name + "_bucket"}


def promtool_check(text: str) -> None:
    out = subprocess.run(
        [PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0 and not out.stdout.strip() and not out.stderr.strip(), (
        out.stdout + out.stderr
    )


@pytest.fixture
def hub_url(tmp_path: Path, private_broker: PrivateBroker) -> Iterator[str]:  # noqa: F811
    proc = subprocess.Popen(
        [*CLI, "hub", "serve", "--port", "0", "--data-dir", str(tmp_path / "hub"),
         "--broker", private_broker.url],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        yield proc.stdout.readline().split()[-1]
    finally:
        proc.terminate()
        proc.wait(15)


def test_hub_and_agent_metrics_pass_promtool_and_merge_exactly(
    tmp_path: Path,
    hub_url: str,
    private_broker: PrivateBroker,  # noqa: F811
) -> None:
    need_service(Path(PROMTOOL).exists(), f"promtool ({PROMTOOL}, Debian package prometheus)")
    priv, pub = generate_keypair(tmp_path / "keys")
    bundle, data = make_tabular_bundle(tmp_path / "sensors.ekb", priv)
    agents: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        for i, dev in enumerate(AGENTS):
            np.save(tmp_path / f"{dev}.npy", data.stream(N, seed=30 + i))
            port = free_port()
            log = (tmp_path / f"{dev}.log").open("w")
            proc = subprocess.Popen(
                [*CLI, "agent", "run", "--device-id", dev, "--broker", private_broker.url,
                 "--data-dir", str(tmp_path / dev), "--bundle", str(bundle),
                 "--trusted-key", str(pub), "--replay", str(tmp_path / f"{dev}.npy"),
                 "--replay-rate", "400", "--no-replay-loop", "--http-port", str(port),
                 "--telemetry-interval", "1", "--selftest-time-budget", "0.1"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
            agents[dev] = (proc, f"http://127.0.0.1:{port}")

        def agent_samples(dev: str) -> Samples | None:
            try:
                got = parse(scrape(agents[dev][1]))
            except OSError:
                return None  # not listening yet
            return got if got.get(("edgekit_agent_inferences_total", ())) == N else None

        served = {
            dev: wait_for(functools.partial(agent_samples, dev), 90, f"{dev} served")
            for dev in AGENTS
        }
        mv = (("model", "sensors"), ("version", "1"))

        stored_key = ("edgekit_bridge_stored_messages_total", (("kind", "telemetry"),))

        def hub_done() -> Samples | None:
            # The bridge adds its own counters in a transaction after the batch's (see
            # Bridge.persist_counters): a scrape may land between the two.
            got = parse(scrape(hub_url))
            merged = got.get(("edgekit_inference_latency_seconds_count", mv)) == 2 * N
            return got if merged and got.get(stored_key, 0) >= 2 else None

        hub = wait_for(hub_done, 60, "every interval merged on the hub")
        assert hub[("edgekit_inferences_total", mv)] == 2 * N
        assert hub[("edgekit_version_devices", mv)] == 2
        assert hub[("edgekit_devices", (("state", "online"),))] == 2
        merged = bucket_counts(hub, "edgekit_inference_latency_seconds")
        per_agent = [
            bucket_counts(served[d], "edgekit_agent_inference_latency_seconds") for d in AGENTS
        ]
        assert merged == {le: per_agent[0][le] + per_agent[1][le] for le in merged}
        assert merged["+Inf"] == 2 * N
        stored = hub[stored_key]
        assert stored >= 2 and hub[("edgekit_bridge_received_messages_total", ())] >= stored

        promtool_check(scrape(hub_url))
        for dev in AGENTS:
            promtool_check(scrape(agents[dev][1]))
    finally:
        for proc, _url in agents.values():
            proc.terminate()
            proc.wait(15)
