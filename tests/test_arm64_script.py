"""scripts/arm64's own logic, without building anything: the cache key, the pip platform
tags, the emulated core's /proc/cpuinfo (read back by the agent's parser) and the errors a
user sees (unreachable mirror, unknown core). The build itself: tests/edge/integration/
test_arm64.py."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import ModuleType

import pytest

from edge.runtime.cpuinfo import parse
from edge.runtime.device import INTERESTING_FLAGS
from tests.scripts import load_script


@pytest.fixture(scope="module")
def arm64() -> ModuleType:
    return load_script("arm64", "arm64_script")


def test_the_cache_key_follows_the_requirements(arm64: ModuleType) -> None:
    reqs = arm64.edge_requirements()
    assert any(r.startswith("ai-edge-litert") for r in reqs)  # the edge extra, from pyproject
    assert arm64.cache_key(reqs) == arm64.cache_key(list(reversed(reqs)))
    assert arm64.cache_key(reqs) != arm64.cache_key([*reqs, "onnxruntime>=1.18"])


def test_pip_gets_every_tag_a_bookworm_device_accepts(arm64: ModuleType) -> None:
    tags = arm64.platform_tags()
    assert tags[0] == "manylinux_2_36_aarch64" and "manylinux_2_17_aarch64" in tags
    assert "manylinux_2_27_aarch64" in tags  # ai-edge-litert 2.x's tag
    assert tags[-1] == "manylinux2014_aarch64" and not any("x86" in t for t in tags)


@pytest.mark.parametrize(
    ("cpu", "model", "flag"),
    [("cortex-a72", "Cortex-A72", "asimd"), ("cortex-a76", "Cortex-A76", "asimddp"),
     ("cortex-a53", "Cortex-A53", "asimd"), ("neoverse-n1", "Neoverse-N1", "asimdhp")],
)  # fmt: skip
def test_the_emulated_cores_cpuinfo_reads_as_that_core(
    arm64: ModuleType, cpu: str, model: str, flag: str
) -> None:
    got = parse(arm64.cpuinfo_text(cpu, 4), "aarch64", INTERESTING_FLAGS)
    assert got["model"] == model and flag in got["flags"] and got["source"] == "cpuinfo"


def test_emulate_cpu_writes_the_file_once_and_host_removes_it(
    arm64: ModuleType, tmp_path: Path
) -> None:
    (tmp_path / "proc").mkdir()
    assert arm64.emulate_cpu(tmp_path, "cortex-a76") == {"QEMU_CPU": "cortex-a76"}
    target = tmp_path / "proc" / "cpuinfo"
    assert target.read_text() == arm64.cpuinfo_text("cortex-a76", os.cpu_count() or 1)
    assert arm64.emulate_cpu(tmp_path, "host") == {} and not target.exists()
    with pytest.raises(arm64.Arm64Error, match="unknown --cpu 'z80'"):
        arm64.emulate_cpu(tmp_path, "z80")


def test_an_unreachable_mirror_is_a_clear_error(arm64: ModuleType) -> None:
    with pytest.raises(arm64.Arm64Error, match=r"Debian mirror is unreachable .*--mirror"):
        arm64.check_mirror("http://127.0.0.1:9/debian")


def test_a_failed_first_build_leaves_no_entry_and_exits_1(
    arm64: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = arm64.main(["--cache", str(tmp_path), "--mirror", "http://127.0.0.1:9/x", "rootfs"])
    err = capsys.readouterr().err
    assert code == 1 and "arm64: FAILED:" in err
    tools = all(shutil.which(t) for t in ("qemu-aarch64-static", "debootstrap", "dpkg-deb"))
    if not tools:
        assert "apt-get install qemu-user-static debootstrap" in err
    elif os.geteuid() == 0:
        assert "mirror is unreachable" in err
    assert [p.name for p in tmp_path.iterdir()] == [".lock"]  # no half-built entry
