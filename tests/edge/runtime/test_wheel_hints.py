"""A missing runtime says whether pip can install it on this architecture (docs/runtimes.md)."""

from __future__ import annotations

import platform
import re
import sys
from pathlib import Path

import pytest

from edge.contract import RUNTIMES
from edge.errors import RuntimeMissingError
from edge.runtime import device, runtime_info
from edge.runtime.backends import base

DOC = Path(__file__).resolve().parents[3] / "docs" / "runtimes.md"


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_no_wheel_for_armv7l_names_the_architecture_and_the_docs(runtime: str) -> None:
    info = runtime_info(runtime)
    assert info.no_wheel("armv7l", "linux") == (
        f"{runtime} has no wheel for armv7l on PyPI; see docs/runtimes.md"
    )
    assert "pip install" not in info.install_hint_for("armv7l", "linux")


def test_litert_on_armv7l_points_to_the_package_that_has_a_wheel() -> None:
    hint = runtime_info("litert").install_hint_for("armv7l", "linux")
    assert hint.startswith("ai-edge-litert has no wheel for armv7l on PyPI; tflite-runtime")
    assert "pip install tflite-runtime" in hint and "docs/runtimes.md" in hint


@pytest.mark.parametrize("machine", ["x86_64", "aarch64", "AMD64", "arm64"])
@pytest.mark.parametrize("runtime", RUNTIMES)
def test_where_a_wheel_exists_the_hint_is_pip_install(runtime: str, machine: str) -> None:
    info = runtime_info(runtime)
    assert info.no_wheel(machine, "linux") is None
    assert info.install_hint_for(machine, "linux").startswith("install it with: pip install ")


def test_unchecked_systems_and_architectures_make_no_claim() -> None:
    info = runtime_info("onnxruntime")
    assert info.no_wheel("armv7l", "darwin") is None  # only Linux wheels were checked
    assert info.no_wheel("riscv64", "linux") is None
    assert base.wheel_arch("armv8l") == "armv7l" and base.wheel_arch("ARM64") == "aarch64"


def test_a_32_bit_python_on_a_64_bit_arm_kernel_gets_armv7l_wheels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """32-bit Raspberry Pi OS boots a 64-bit kernel on a Pi 4/5: uname says aarch64."""
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(sys, "maxsize", 2**31 - 1)
    assert base.wheel_arch() == "armv7l"
    monkeypatch.setattr(sys, "maxsize", 2**63 - 1)
    assert base.wheel_arch() == "aarch64"


def test_the_device_description_and_the_backend_error_carry_the_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(platform, "machine", lambda: "armv7l")
    monkeypatch.setitem(
        device.RUNTIME_PACKAGES, "openvino", (("edgekit_no_such_pkg", ("edgekit-no-such",)),)
    )
    monkeypatch.delitem(device._probed, "openvino", raising=False)
    reason = device.describe_runtimes()["openvino"]["reason"]
    assert reason == "not installed: openvino has no wheel for armv7l on PyPI; see docs/runtimes.md"
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    reason = device.describe_runtimes()["openvino"]["reason"]
    assert reason == "not installed (pip install edgekit-no-such)"  # a wheel exists there
    monkeypatch.setattr(platform, "machine", lambda: "armv7l")
    err = RuntimeMissingError(f"OpenVINO is not installed; {runtime_info('openvino').install_hint}")
    assert "no wheel for armv7l" in str(err)


def test_the_declared_wheels_match_the_table_in_docs_runtimes() -> None:
    """docs/runtimes.md's table is the record of what pip gave; the code must agree."""
    text = DOC.read_text()
    for runtime in RUNTIMES:
        info = runtime_info(runtime)
        for arch in base.WHEEL_ARCHES:
            row = re.search(rf"^\| {runtime} \| {arch} \| ([^|]+)\|", text, re.M)
            assert row, f"docs/runtimes.md has no row for {runtime} on {arch}"
            cell = row.group(1).strip()
            package = dict(info.wheels).get(arch)
            if package is None:
                assert cell.startswith("none"), (runtime, arch, cell)
            else:
                assert cell.startswith(f"{package} "), (runtime, arch, cell)
