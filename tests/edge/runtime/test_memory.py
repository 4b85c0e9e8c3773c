"""Free memory: the smallest of system, cgroup (v1 and v2) and RLIMIT_AS; and the variant
that needs more than that is not chosen."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from edge.bundle import extract_bundle
from edge.contract import Manifest
from edge.errors import InstallError
from edge.install.policy import Policy
from edge.install.steps import check_device_class
from edge.runtime import describe_device, memory, self_test

REPO = Path(__file__).resolve().parents[3]
BUNDLE, PUB = REPO / "models" / "digits.ekb", REPO / "models" / "dev-signing.pub"
MIB = 2**20


def _cgroup(tmp_path: Path, proc_line: str, files: dict[str, str]) -> tuple[Path, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "proc-cgroup"
    proc.write_text(proc_line + "\n")
    root = tmp_path / "cg"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return proc, root


def test_cgroup_v2_limit_minus_working_set(tmp_path: Path) -> None:
    proc, root = _cgroup(
        tmp_path,
        "0::/svc/agent",
        {
            "svc/agent/memory.max": f"{512 * MIB}\n",
            "svc/agent/memory.current": f"{300 * MIB}\n",
            "svc/agent/memory.stat": f"anon 1\ninactive_file {100 * MIB}\nactive_file 5\n",
        },
    )
    # reclaimable page cache does not count as used: 512 - (300 - 100)
    assert memory.cgroup_available(proc, root) == 312 * MIB


def test_cgroup_v2_without_a_limit_does_not_apply(tmp_path: Path) -> None:
    proc, root = _cgroup(
        tmp_path, "0::/", {"memory.max": "max\n", "memory.current": f"{10 * MIB}\n"}
    )
    assert memory.cgroup_available(proc, root) is None


def test_cgroup_v1_limit_and_its_no_limit_value(tmp_path: Path) -> None:
    limited = {
        "memory/docker/x/memory.limit_in_bytes": f"{256 * MIB}\n",
        "memory/docker/x/memory.usage_in_bytes": f"{300 * MIB}\n",
        "memory/docker/x/memory.stat": f"total_inactive_file {20 * MIB}\n",
    }
    proc, root = _cgroup(tmp_path / "a", "4:memory:/docker/x", limited)
    assert memory.cgroup_available(proc, root) == 0  # over the limit: nothing free, not < 0
    unlimited = {
        "memory/memory.limit_in_bytes": "9223372036854771712\n",
        "memory/memory.usage_in_bytes": f"{10 * MIB}\n",
    }
    # the v1 hierarchy mounted at the container's own cgroup: the path is not there
    proc, root = _cgroup(tmp_path / "b", "4:memory:/elsewhere", unlimited)
    assert memory.cgroup_available(proc, root) is None


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"memory.max": "garbage\n", "memory.current": "12\n"},
        {"memory.max": f"{MIB}\n"},  # no memory.current
    ],
)
def test_unreadable_or_malformed_cgroup_files_mean_no_limit(
    tmp_path: Path, files: dict[str, str]
) -> None:
    proc, root = _cgroup(tmp_path, "0::/", files)
    assert memory.cgroup_available(proc, root) is None
    assert memory.cgroup_available(tmp_path / "missing", root) is None


def test_capabilities_report_free_memory_here() -> None:
    caps = describe_device()
    assert caps["memory_available_source"] in ("system", "cgroup", "rlimit_as")
    assert 0 < caps["memory_available_mb"] <= caps["memory_mb"]


CAPS_CODE = (
    "import json, resource\n"
    "from edge.runtime import describe_device\n"
    "from edge.runtime.memory import proc_status\n"
    "c = describe_device()\n"
    "print(json.dumps({'mb': c['memory_available_mb'], 'source': c['memory_available_source'],"
    " 'vm': proc_status()['VmSize'] / 2**20}))\n"
)


def _caps_under(limit: int | None) -> dict[str, float | str]:
    def preexec() -> None:
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    out = subprocess.run(
        [sys.executable, "-c", CAPS_CODE],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        preexec_fn=preexec,
    )
    result: dict[str, float | str] = json.loads(out.stdout)
    return result


def test_rlimit_as_caps_the_reported_free_memory_in_a_subprocess() -> None:
    free = _caps_under(None)
    assert free["source"] != "rlimit_as"
    limited = _caps_under(1024 * MIB)
    assert limited["source"] == "rlimit_as"
    mb, vm = float(limited["mb"]), float(limited["vm"])
    # 1 GiB minus the address space the process already holds (measured just after)
    assert 0 < mb < 1024 and abs(mb - (1024 - vm)) < 32
    assert mb < float(free["mb"])


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    if not BUNDLE.exists():
        pytest.skip("models/digits.ekb not built")
    dest = tmp_path_factory.mktemp("memory") / "bundle"
    return dest, extract_bundle(BUNDLE, dest, PUB)


def _needing(manifest: Manifest, need: dict[str, float]) -> Manifest:
    """The manifest with ``requires.memory_mb`` set on the named variants."""
    arts = [
        replace(a, metrics={**a.metrics, "requires": {"memory_mb": need[a.target]}})
        if a.target in need
        else a
        for a in manifest.artifacts
    ]
    return replace(manifest, artifacts=arts)


def test_a_variant_needing_more_memory_than_free_is_not_chosen(
    extracted: tuple[Path, Manifest],
) -> None:
    dest, manifest = extracted
    caps = {**describe_device(), "memory_available_mb": 100.0}
    wanted = _needing(manifest, {"litert-fp32": 150.0, "litert-int8": 20.0})
    report = self_test(dest, wanted, pin_runtime="litert", time_budget=0.2, capabilities=caps)
    status = {v.target: (v.status, v.reason) for v in report.variants}
    assert status["litert-fp32"][0] == "incompatible"
    assert "150 MB" in str(status["litert-fp32"][1]) and "100 MB" in str(status["litert-fp32"][1])
    assert report.chosen is not None and report.chosen.target == "litert-int8"


def test_a_bundle_whose_every_variant_needs_too_much_is_refused(
    extracted: tuple[Path, Manifest],
) -> None:
    _dest, manifest = extracted
    caps = {**describe_device(), "memory_available_mb": 10.0}
    greedy = _needing(manifest, {a.target: 64.0 for a in manifest.artifacts})
    with pytest.raises(InstallError) as err:
        check_device_class(greedy, Policy(trusted_key=None), caps)
    assert err.value.code == "incompatible" and "64 MB" in str(err.value)
    # the same bundle fits a device with enough free memory
    check_device_class(greedy, Policy(trusted_key=None), {**caps, "memory_available_mb": 64.0})
