"""cpu_info reads /proc/cpuinfo right on x86 and Arm, and says when it cannot tell.

Samples in cpuinfo/: this CI machine's x86 file (first two processors), a Raspberry Pi 4
(Cortex-A72) and Pi 5 (Cortex-A76) on 64-bit Raspberry Pi OS bookworm, an RK3588 board
(4x Cortex-A55 + 4x Cortex-A76) -- as the kernel prints them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.runtime import cpuinfo
from edge.runtime.device import INTERESTING_FLAGS, cpu_info

SAMPLES = Path(__file__).parent / "cpuinfo"


def sample(name: str) -> Path:
    return SAMPLES / name


def test_raspberry_pi_4_is_a_cortex_a72_with_neon() -> None:
    cpu = cpu_info(sample("pi4-cortex-a72.txt"), machine="aarch64")
    assert cpu == {
        "model": "Cortex-A72",
        "arch": "aarch64",
        "flags": ["asimd"],
        "source": "cpuinfo",
        "board": "Raspberry Pi 4 Model B Rev 1.4",
    }


def test_raspberry_pi_5_is_a_cortex_a76_with_dot_product_and_fp16() -> None:
    cpu = cpu_info(sample("pi5-cortex-a76.txt"), machine="aarch64")
    assert cpu["model"] == "Cortex-A76" and cpu["source"] == "cpuinfo"
    assert cpu["flags"] == ["asimd", "asimddp", "asimdhp", "fphp"]
    assert cpu["board"] == "Raspberry Pi 5 Model B Rev 1.0" and "note" not in cpu


def test_big_little_names_both_cores_and_only_common_flags() -> None:
    cpu = cpu_info(sample("rk3588-a55-a76.txt"), machine="aarch64")
    assert cpu["model"] == "Cortex-A55 + Cortex-A76"
    assert "asimddp" in cpu["flags"] and "board" not in cpu
    text = sample("rk3588-a55-a76.txt").read_text().replace(" asimddp", "", 1)
    mixed = cpuinfo.parse(text, "aarch64", INTERESTING_FLAGS)
    assert "asimddp" not in mixed["flags"]  # one core lacks it: the process cannot rely on it


def test_x86_keeps_model_name_and_flags() -> None:
    cpu = cpu_info(sample("x86-epyc.txt"), machine="x86_64")
    assert cpu["model"] == "AMD EPYC" and cpu["source"] == "cpuinfo"
    assert {"avx2", "fma", "sse4_2"} <= set(cpu["flags"]) and "board" not in cpu
    assert set(cpu["flags"]) <= set(INTERESTING_FLAGS)


def test_an_aarch64_process_seeing_x86_cpuinfo_says_it_cannot_tell() -> None:
    """qemu-user: the emulated process reads the host's file; its flags are not ours."""
    cpu = cpu_info(sample("x86-epyc.txt"), machine="aarch64")
    assert cpu["model"] == "unknown" and cpu["flags"] == [] and cpu["source"] == "unknown"
    assert "another architecture" in cpu["note"] and "aarch64" in cpu["note"]
    back = cpu_info(sample("pi4-cortex-a72.txt"), machine="x86_64")  # the other way round
    assert back["model"] == "unknown" and "arm" in back["note"]


def test_unreadable_or_empty_cpuinfo_is_unknown_with_a_note(tmp_path: Path) -> None:
    missing = cpu_info(tmp_path / "nope", machine="aarch64")
    assert missing["model"] == "unknown" and missing["flags"] == []
    assert missing["source"] == "unknown" and "cannot read /proc/cpuinfo" in missing["note"]
    empty = tmp_path / "empty"
    empty.write_text("")
    got = cpu_info(empty, machine="aarch64")
    assert got["model"] == "unknown" and got["note"] == "/proc/cpuinfo names no CPU model"
    (tmp_path / "dir").mkdir()
    assert cpu_info(tmp_path / "dir", machine="x86_64")["source"] == "unknown"


@pytest.mark.parametrize(
    ("implementer", "part", "name"),
    [
        ("0x41", "0xd03", "Cortex-A53"),
        ("0x41", "0xd05", "Cortex-A55"),
        ("0x41", "0xd0c", "Neoverse-N1"),
        ("0x61", "0x023", "Apple M1 Firestorm"),
        ("0x41", "0xd99", "ARM part 0xd99"),  # a new core keeps its numbers
        ("0x99", "0x001", "implementer 0x99 part 0x001"),
        ("junk", "junk", "implementer junk part junk"),
    ],
)
def test_arm_core_names(implementer: str, part: str, name: str) -> None:
    assert cpuinfo.arm_core(implementer, part) == name


def test_garbage_lines_are_ignored_not_fatal() -> None:
    text = "no colon here\n:\n: value only\nCPU part\t: \x00\xff\nFeatures\t: asimd\n"
    got = cpuinfo.parse(text, "aarch64", INTERESTING_FLAGS)
    assert got["arch"] == "aarch64" and got["flags"] == ["asimd"]
    assert isinstance(got["model"], str)


def test_32_bit_arm_and_other_architectures() -> None:
    armv7 = "processor\t: 0\nmodel name\t: ARMv7 Processor rev 4 (v7l)\nFeatures\t: half thumb "
    armv7 += "fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt\nCPU implementer\t: 0x41\n"
    armv7 += "CPU part\t: 0xd08\n\nHardware\t: BCM2711\n"
    got = cpuinfo.parse(armv7, "armv7l", INTERESTING_FLAGS)
    assert got["model"] == "Cortex-A72" and got["flags"] == ["neon"]
    riscv = "processor\t: 0\nisa\t\t: rv64imafdc\nmmu\t\t: sv39\n"
    assert cpuinfo.parse(riscv, "riscv64", INTERESTING_FLAGS)["source"] == "unknown"
    assert cpuinfo.family("arm64") == "arm" and cpuinfo.family("AMD64") == "x86"
    assert cpuinfo.family("riscv64") is None
