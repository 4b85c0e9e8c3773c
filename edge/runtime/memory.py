"""How much memory this process may still use, and how much it uses now.

Free memory is the smallest of what applies here, so a variant is only chosen when it fits
under every limit at once:

- ``system``: psutil's ``available`` (free + reclaimable page cache), the kernel's own
  estimate of what can be allocated without swapping;
- ``cgroup``: the memory limit of this process's cgroup minus its working set, as container
  runtimes count it (v2: ``memory.max`` - (``memory.current`` - ``inactive_file``); v1:
  ``memory.limit_in_bytes`` - (``memory.usage_in_bytes`` - ``total_inactive_file``)). Page
  cache the kernel can drop is not counted as used; no limit ("max", or v1's huge number)
  means the cgroup does not apply;
- ``rlimit_as``: the soft RLIMIT_AS (``ulimit -v``) minus this process's address space
  (VmSize). It limits *virtual* memory: runtimes that reserve address space they never touch
  (ONNX Runtime's and OpenVINO's arenas and thread stacks) hit it long before their RSS does.

A variant's ``requires.memory_mb`` is RSS growth (see edge/runtime/footprint.py), compared
with this number: under a cgroup or no limit, like with like; under RLIMIT_AS, resident
against virtual, so a variant may pass the check and still fail to load, which the
self-test then reports.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

MIB = 2**20
CGROUP_ROOT = Path("/sys/fs/cgroup")
# cgroup v1 reports "no limit" as PAGE_COUNTER_MAX pages; anything this large is no limit.
_NO_LIMIT = 2**60


@dataclass(frozen=True)
class Available:
    """Free memory in MiB (None: cannot tell) and which limit set it."""

    mb: float | None
    source: str  # "system" | "cgroup" | "rlimit_as" | "unknown"


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """The ``Vm*`` lines of /proc/PID/status in bytes ({} where there is no /proc)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if key.startswith("Vm") and len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            out[key] = int(parts[0]) * 1024
    return out


def reset_peak_rss() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False if it cannot."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def system_available() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # no psutil, or no /proc/meminfo: cannot tell
        return None


def _cgroup_dirs(proc_cgroup: Path, root: Path) -> list[tuple[str, Path]]:
    """(version, directory) of this process's memory cgroup: v2 first, then v1."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return []
    found: list[tuple[str, Path]] = []
    for line in lines:
        _hid, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        rel = path.strip().lstrip("/")
        if controllers == "":
            found.insert(0, ("v2", root / rel))
        elif "memory" in controllers.split(","):
            # In a container the v1 hierarchy is often mounted at its own cgroup.
            base = root / "memory"
            found.append(("v1", base / rel if (base / rel).is_dir() else base))
    return found


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _inactive_file(stat: Path, key: str) -> int:
    try:
        for line in stat.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def cgroup_available(
    proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = CGROUP_ROOT
) -> int | None:
    """Limit minus working set of this process's memory cgroup; None when none applies."""
    for version, d in _cgroup_dirs(proc_cgroup, root):
        if version == "v2":
            limit, used = _read_int(d / "memory.max"), _read_int(d / "memory.current")
            cache = _inactive_file(d / "memory.stat", "inactive_file")
        else:
            limit = _read_int(d / "memory.limit_in_bytes")
            used = _read_int(d / "memory.usage_in_bytes")
            cache = _inactive_file(d / "memory.stat", "total_inactive_file")
        if limit is None or used is None or limit >= _NO_LIMIT:
            continue  # "max" is not a number: no limit here
        return max(0, limit - max(0, used - cache))
    return None


def rlimit_as_available() -> int | None:
    """Soft RLIMIT_AS minus this process's address space; None when unlimited."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    size = proc_status().get("VmSize")
    if size is None:
        return None
    return max(0, soft - size)


def available() -> Available:
    """The smallest free memory of system, cgroup and RLIMIT_AS (see the module doc)."""
    candidates = {
        "system": system_available(),
        "cgroup": cgroup_available(),
        "rlimit_as": rlimit_as_available(),
    }
    known = {k: v for k, v in candidates.items() if v is not None}
    if not known:
        return Available(None, "unknown")
    source = min(known, key=lambda k: known[k])
    return Available(round(known[source] / MIB, 1), source)
