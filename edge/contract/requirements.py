"""What a model variant needs from a device, and the one check of it the hub and agent share.

A variant's ``requires`` (``metrics.requires`` in the manifest, ``Artifact.requires`` in
code) states the runtime package version it was exported and evaluated with (the minimum
it is known to work on), the CPU architectures it is built for when that matters, and the
memory it used loaded and running. The check reads the device's ``capabilities`` exactly as
its status message carries them (edge/runtime/device.py ``describe_device()``), so the hub
decides before it sends a deploy and the agent refuses with the same words if one arrives
anyway.

It lives inside ``metrics`` for the reason ``golden_tolerance`` does: agents that predate it
copy ``metrics`` verbatim when they recompute the signed bytes, so they still verify (and
simply do not check) new bundles; a new key on the artifact would break their signature.

What cannot be proven is allowed: a device that reports its runtime version as
``"unknown"`` (or one that does not parse), a version of another package than the one the
variant was measured with (LiteRT ships as ai-edge-litert, tflite-runtime and tensorflow,
numbered differently), an unknown architecture or memory. The agent's self-test on the
golden set is still the last word on those.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edge.errors import ManifestError

if TYPE_CHECKING:
    from edge.contract.manifest import Artifact, Manifest

REQUIRES_KEY = "requires"  # under an artifact's ``metrics``
INCOMPATIBLE = "incompatible"  # ``detail.code`` of the agent's refusal; the hub's status
# Spellings of one architecture (platform.machine() differs by OS) -> the Linux name.
ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64", "armv8": "aarch64"}

_VERSION_RE = re.compile(r"\s*v?(\d+(?:\.\d+)*)(.*)", re.IGNORECASE)
_PRE_RELEASE_RE = re.compile(r"[-_.]?(a|b|c|rc|alpha|beta|pre|preview|dev)\d*", re.IGNORECASE)


def parse_version(text: Any) -> tuple[tuple[int, ...], int] | None:
    """A comparable key of a package version, or None when there is no number to read.

    The dotted numeric release is compared with trailing zeros ignored ("1.20" = "1.20.0");
    a pre-release ("1.20.0rc1", "2.0.0.dev1") sorts before its release; anything else after
    the release -- a build number ("2024.4.0-16579"), a local tag ("1.18.1+cu118"), a post
    release -- counts as that release.
    """
    if not isinstance(text, str):
        return None
    m = _VERSION_RE.fullmatch(text)
    if m is None:
        return None
    release = [int(part) for part in m.group(1).split(".")]
    while len(release) > 1 and release[-1] == 0:
        release.pop()
    pre = bool(_PRE_RELEASE_RE.match(m.group(2)))
    return tuple(release), 0 if pre else 1


def _mb(value: float) -> str:
    """41.5 -> "41.5", 512.0 -> "512", never an exponent."""
    return f"{value:.1f}".removesuffix(".0")


def _known(value: Any) -> bool:
    """A reported value that says something (not missing, empty or "unknown")."""
    return isinstance(value, str) and value.strip().lower() not in ("", "unknown")


def normalise_arch(arch: str) -> str:
    """One name per architecture: ``arm64`` -> ``aarch64``, ``AMD64`` -> ``x86_64``."""
    low = arch.strip().lower()
    return ARCH_ALIASES.get(low, low)


@dataclass(frozen=True)
class Requirements:
    """What one variant needs. Every field is optional; None means "not stated".

    ``runtime_version``: the runtime package version the variant was exported and
    evaluated with, the minimum a device must have. ``runtime_package``: which package
    that version is of (``ai-edge-litert``, ``onnxruntime``, ...), so a version of another
    package is not compared with it. ``arch``: the CPU architectures the variant runs on
    (None: any). ``memory_mb``: resident memory growth when loaded and running, measured at
    export; a device with less available does not run it.
    """

    runtime_version: str | None = None
    runtime_package: str | None = None
    arch: tuple[str, ...] | None = None
    memory_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "runtime_version": self.runtime_version,
            "arch": list(self.arch) if self.arch is not None else None,
        }
        if self.runtime_package is not None:
            d["runtime_package"] = self.runtime_package
        if self.memory_mb is not None:
            d["memory_mb"] = self.memory_mb
        return d

    @staticmethod
    def parse(obj: Any, where: str) -> Requirements:
        """Check ``requires`` strictly (a device acts on it); keys it does not know are
        ignored, so a newer exporter's extra requirement never breaks an older reader."""
        if not isinstance(obj, dict):
            raise ManifestError(f"{where} must be an object")
        version = obj.get("runtime_version")
        if version is not None and (not isinstance(version, str) or parse_version(version) is None):
            raise ManifestError(
                f"{where}.runtime_version must be a version string like '2.3.0', got {version!r}"
            )
        package = obj.get("runtime_package")
        if package is not None and (not isinstance(package, str) or not package.strip()):
            raise ManifestError(f"{where}.runtime_package must be a non-empty string")
        arch = obj.get("arch")
        if arch is not None and (
            not isinstance(arch, list)
            or not arch
            or not all(isinstance(a, str) and a.strip() for a in arch)
        ):
            raise ManifestError(
                f"{where}.arch must be null or a non-empty list of architecture names "
                f"like ['x86_64', 'aarch64'], got {arch!r}"
            )
        memory = obj.get("memory_mb")
        if memory is not None and (
            isinstance(memory, bool)
            or not isinstance(memory, (int, float))
            or not math.isfinite(memory)
            or memory < 0
        ):
            raise ManifestError(f"{where}.memory_mb must be a finite number >= 0, got {memory!r}")
        return Requirements(
            runtime_version=version,
            runtime_package=package,
            arch=tuple(arch) if arch is not None else None,
            memory_mb=float(memory) if memory is not None else None,
        )


def variant_problem(artifact: Artifact, capabilities: Mapping[str, Any]) -> str | None:
    """Why this device cannot run ``artifact``, or None when it can (or cannot be proven
    not to). ``capabilities`` as the status message carries them; without a ``runtimes``
    map (a device that never described itself) nothing can be judged: None."""
    runtimes = capabilities.get("runtimes")
    if not isinstance(runtimes, Mapping):
        return None
    target, runtime = artifact.target, artifact.runtime
    info = runtimes.get(runtime)
    if not isinstance(info, Mapping) or not info.get("available"):
        why = info.get("reason") if isinstance(info, Mapping) else None
        return f"{target} needs {runtime}, which the device does not have" + (
            f" ({why})" if why else ""
        )
    req = artifact.requires
    if req is None:
        return None
    problems: list[str] = []
    cpu = capabilities.get("cpu")
    device_arch = cpu.get("arch") if isinstance(cpu, Mapping) else None
    if (
        req.arch is not None
        and _known(device_arch)
        and normalise_arch(str(device_arch)) not in {normalise_arch(a) for a in req.arch}
    ):
        problems.append(f"{target} is built for {', '.join(req.arch)}, the device is {device_arch}")
    if req.runtime_version is not None:
        have = info.get("version")
        package = info.get("package")
        same_package = req.runtime_package is None or package in (None, req.runtime_package)
        have_key, need_key = parse_version(have), parse_version(req.runtime_version)
        if same_package and have_key is not None and need_key is not None and have_key < need_key:
            name = req.runtime_package or (package if isinstance(package, str) else runtime)
            problems.append(
                f"{target} needs {name} >= {req.runtime_version}, the device has {have}"
            )
    available = capabilities.get("memory_available_mb")
    if (
        req.memory_mb is not None
        and isinstance(available, (int, float))
        and not isinstance(available, bool)
        and req.memory_mb > available
    ):
        problems.append(
            f"{target} needs {_mb(req.memory_mb)} MB of memory, the device has "
            f"{_mb(available)} MB available"
        )
    return "; ".join(problems) or None


def runnable(manifest: Manifest, capabilities: Mapping[str, Any]) -> tuple[list[Artifact], str]:
    """The variants this device can run, in manifest order, and -- when there are none --
    one reason naming every variant's problem ("" when some can run)."""
    ok: list[Artifact] = []
    problems: list[str] = []
    for artifact in manifest.artifacts:
        problem = variant_problem(artifact, capabilities)
        if problem is None:
            ok.append(artifact)
        else:
            problems.append(problem)
    if ok:
        return ok, ""
    return [], (
        f"no variant of {manifest.name} v{manifest.version} runs on this device: "
        + "; ".join(problems)
    )
