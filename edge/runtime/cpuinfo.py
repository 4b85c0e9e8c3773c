"""The CPU as Linux's /proc/cpuinfo describes it, read right on x86 and on Arm.

The two differ: x86 names the model (``model name``) and lists ``flags``; Arm lists
``Features`` and identifies the core only by numbers (``CPU implementer``, ``CPU part``),
named here from a small table of common cores. Under user-mode emulation (qemu-user on an
x86 host, how CI runs the arm64 check) /proc/cpuinfo is the host's: its x86 flags say
nothing about what the emulated aarch64 process can run, so the answer is then "unknown"
with a ``note`` rather than a plausible lie. Pure functions of the text: unit-tested with
real samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# CPU implementer -> (vendor, {CPU part: core}), from the Arm ARM's MIDR_EL1 assignments
# and the Linux kernel's arch/arm64/include/asm/cputype.h.
ARM_CORES: dict[int, tuple[str, dict[int, str]]] = {
    0x41: ("ARM", {
        0xB76: "ARM1176", 0xC07: "Cortex-A7", 0xC08: "Cortex-A8", 0xC09: "Cortex-A9",
        0xC0F: "Cortex-A15", 0xD01: "Cortex-A32", 0xD03: "Cortex-A53", 0xD04: "Cortex-A35",
        0xD05: "Cortex-A55", 0xD07: "Cortex-A57", 0xD08: "Cortex-A72", 0xD09: "Cortex-A73",
        0xD0A: "Cortex-A75", 0xD0B: "Cortex-A76", 0xD0C: "Neoverse-N1", 0xD0D: "Cortex-A77",
        0xD40: "Neoverse-V1", 0xD41: "Cortex-A78", 0xD44: "Cortex-X1", 0xD46: "Cortex-A510",
        0xD47: "Cortex-A710", 0xD48: "Cortex-X2", 0xD49: "Neoverse-N2", 0xD4F: "Neoverse-V2",
        0xD80: "Cortex-A520", 0xD81: "Cortex-A720", 0xD82: "Cortex-X4",
    }),
    0x42: ("Broadcom", {0x516: "Vulcan"}),
    0x43: ("Cavium", {0x0A1: "ThunderX", 0x0AF: "ThunderX2"}),
    0x46: ("Fujitsu", {0x001: "A64FX"}),
    0x48: ("HiSilicon", {0xD01: "TaiShan v110"}),
    0x4E: ("NVIDIA", {0x003: "Denver 2", 0x004: "Carmel"}),
    0x50: ("APM", {0x000: "X-Gene"}),
    0x51: ("Qualcomm", {0x800: "Kryo 2xx Gold", 0x801: "Kryo 2xx Silver",
                        0x804: "Kryo 4xx Gold", 0x805: "Kryo 4xx Silver", 0x001: "Oryon"}),
    0x61: ("Apple", {0x022: "M1 Icestorm", 0x023: "M1 Firestorm", 0x024: "M1 Pro Icestorm",
                     0x025: "M1 Pro Firestorm", 0x028: "M1 Max Icestorm",
                     0x029: "M1 Max Firestorm", 0x032: "M2 Blizzard", 0x033: "M2 Avalanche"}),
    0xC0: ("Ampere", {0xAC3: "Ampere-1", 0xAC4: "Ampere-1a"}),
}  # fmt: skip

_X86 = {"x86_64", "amd64", "i386", "i486", "i586", "i686", "x86"}
_ARM = {"aarch64", "arm64", "armv6l", "armv7l", "armv8l", "armv8b", "aarch64_be", "arm"}


def family(machine: str) -> str | None:
    """``x86``, ``arm`` or None (another architecture: no claim is checked)."""
    machine = machine.lower()
    if machine in _X86:
        return "x86"
    if machine in _ARM or machine.startswith("arm"):
        return "arm"
    return None


def _processors(text: str) -> list[dict[str, str]]:
    """The ``key: value`` blocks of /proc/cpuinfo (blank-line separated), keys lowercased."""
    blocks: list[dict[str, str]] = [{}]
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if not line.strip() and blocks[-1]:
                blocks.append({})
            continue
        blocks[-1][key.strip().lower()] = value.strip()
    return [b for b in blocks if b]


def described_family(blocks: list[dict[str, str]]) -> str | None:
    """Which architecture the text describes, from the fields only that one has."""
    keys = {k for b in blocks for k in b}
    if keys & {"cpu implementer", "cpu part", "features", "cpu architecture"}:
        return "arm"
    if keys & {"vendor_id", "cpu family", "flags"}:
        return "x86"
    return None


def _int(value: str) -> int | None:
    try:
        return int(value, 0)
    except ValueError:
        return None


def arm_core(implementer: str, part: str) -> str:
    """``Cortex-A72`` for (0x41, 0xd08); unknown cores keep their numbers."""
    impl, num = _int(implementer), _int(part)
    unknown: tuple[str, dict[int, str]] = (f"implementer {implementer}", {})
    vendor, cores = ARM_CORES.get(impl, unknown) if impl is not None else unknown
    name = cores.get(num) if num is not None else None
    if name:
        return name if vendor == "ARM" else f"{vendor} {name}"
    return f"{vendor} part {part}"


def _model(blocks: list[dict[str, str]], fam: str | None) -> str | None:
    names: list[str] = []
    for block in blocks:
        if fam == "arm" and "cpu part" in block:
            name = arm_core(block.get("cpu implementer", "?"), block["cpu part"])
        else:
            name = block.get("model name") or block.get("cpu model") or ""
        if name and name not in names:
            names.append(name)
    if names:
        return " + ".join(names)  # big.LITTLE: "Cortex-A55 + Cortex-A76"
    hardware = next((b["hardware"] for b in blocks if b.get("hardware")), None)
    return hardware  # old 32-bit Arm kernels: "Hardware : BCM2835"


def _flags(blocks: list[dict[str, str]], interesting: tuple[str, ...]) -> list[str]:
    """Flags every core has (big.LITTLE cores can differ), limited to ``interesting``."""
    sets = [set((b.get("flags") or b.get("features") or "").split()) for b in blocks]
    sets = [s for s in sets if s]
    common = set.intersection(*sets) if sets else set()
    return sorted(f for f in common if f in interesting)


def parse(
    text: str | None, machine: str, interesting: tuple[str, ...], *, error: str = ""
) -> dict[str, Any]:
    """``{"model", "arch", "flags", "source"[, "board"][, "note"]}`` for a process running as
    ``machine`` (platform.machine()) reading ``text`` (None: unreadable, ``error`` why).

    ``source`` is ``cpuinfo`` when the text describes this process's architecture,
    ``unknown`` when it cannot be read or describes another one: then ``model`` is
    ``"unknown"``, ``flags`` is empty and ``note`` says why."""
    if text is None:
        return {"model": "unknown", "arch": machine, "flags": [], "source": "unknown",
                "note": f"cannot read /proc/cpuinfo ({error or 'unreadable'})"}  # fmt: skip
    blocks = _processors(text)
    described, running = described_family(blocks), family(machine)
    if described and running and described != running:
        return {"model": "unknown", "arch": machine, "flags": [], "source": "unknown",
                "note": f"the process runs as {machine} but /proc/cpuinfo describes another "
                        f"architecture ({described}): emulated (qemu-user)?"}  # fmt: skip
    model = _model(blocks, described)
    out: dict[str, Any] = {
        "model": model or "unknown",
        "arch": machine,
        "flags": _flags(blocks, interesting),
        "source": "cpuinfo" if model else "unknown",
    }
    board = next((b["model"] for b in blocks if b.get("model") and not b["model"].isdigit()), None)
    if board:
        out["board"] = board  # Raspberry Pi kernels: "Raspberry Pi 4 Model B Rev 1.4"
    if not model:
        out["note"] = "/proc/cpuinfo names no CPU model"
    return out


def read(path: Path, machine: str, interesting: tuple[str, ...]) -> dict[str, Any]:
    try:
        text: str | None = path.read_text(errors="replace")
        error = ""
    except OSError as exc:
        text, error = None, exc.strerror or type(exc).__name__
    return parse(text, machine, interesting, error=error)
