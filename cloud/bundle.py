"""Build and sign model bundles (the reading side is edge/bundle/archive.py).

``build_bundle`` lays out the archive exactly as docs/bundle-format.md describes:
``manifest.json`` first, then every other member sorted by name, each with fixed owner,
mode and mtime (the manifest's ``created`` time), inside a gzip stream whose header carries
no timestamp or file name. Rebuilding from the same inputs therefore gives the same bytes,
and Ed25519 signatures are deterministic too.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cloud.keys import load_private_key, sign_manifest, to_json_data
from edge.bundle import check_member_name
from edge.contract import (
    MANIFEST_NAME,
    PRECISIONS,
    RUNTIMES,
    VARIANT_TOLERANCE_KEY,
    Artifact,
    FileEntry,
    Golden,
    Manifest,
    TensorSpec,
)
from edge.errors import BundleError, ManifestError

GOLDEN_NAME = "golden.npz"
REFERENCE_NAME = "reference.json"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
DEFAULT_TOLERANCE = {"max_mean_abs_error": 0.05, "min_top1_agreement": 0.9}


@dataclass
class ArtifactSource:
    """One model variant to pack: its file, companions (OpenVINO's .bin) and metrics.

    ``tolerance``: the variant's own self-test tolerance (``max_mean_abs_error``,
    ``min_top1_agreement``), stored as ``metrics.golden_tolerance``; None leaves the
    variant to the bundle's shared ``golden.tolerance``."""

    path: Path
    runtime: str
    precision: str
    metrics: dict[str, Any] = field(default_factory=dict)
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    companions: list[Path] = field(default_factory=list)
    tolerance: dict[str, float] | None = None

    @property
    def target(self) -> str:
        return f"{self.runtime}-{self.precision}"

    def manifest_metrics(self) -> dict[str, Any]:
        """``metrics`` as the manifest lists them, with the tolerance inside."""
        metrics = dict(self.metrics)
        if self.tolerance is not None:
            metrics[VARIANT_TOLERANCE_KEY] = {k: float(v) for k, v in self.tolerance.items()}
        return metrics

    def arcnames(self) -> list[tuple[str, Path]]:
        """``models/<runtime>-<precision><suffix>`` for the model and each companion."""
        base = f"models/{self.target}"
        out = [(base + self.path.suffix.lower(), self.path)]
        out.extend((base + c.suffix.lower(), c) for c in self.companions)
        return out


@dataclass
class GoldenSet:
    """Self-test data: model-domain ``inputs``, the float model's ``outputs``, labels."""

    inputs: np.ndarray
    outputs: np.ndarray
    labels: np.ndarray | None = None
    tolerance: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TOLERANCE))


def utc_now_iso() -> str:
    """Now (or ``SOURCE_DATE_EPOCH`` for reproducible builds) as ISO 8601 UTC."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    now = datetime.fromtimestamp(int(epoch), UTC) if epoch else datetime.now(UTC)
    return now.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _created_epoch(created: str) -> int:
    try:
        dt = datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ManifestError(f"'created' {created!r} is not an ISO 8601 time") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return max(0, int(dt.timestamp()))


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An ``.npz`` with fixed zip timestamps (numpy's own savez stamps the current time)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            arr = np.asarray(arrays[key])
            if arr.dtype == object:
                raise BundleError(f"golden array {key!r} has object dtype; use numbers or str")
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def _digest(source: Path | bytes) -> tuple[int, str]:
    if isinstance(source, bytes):
        return len(source), hashlib.sha256(source).hexdigest()
    h = hashlib.sha256()
    size = 0
    try:
        with source.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise BundleError(f"cannot read {source}: {exc.strerror}") from exc
    return size, h.hexdigest()


def build_bundle(
    out: str | Path,
    *,
    name: str,
    version: int,
    labels: list[str],
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    preprocessing: dict[str, Any],
    artifacts: list[ArtifactSource],
    private_key: Ed25519PrivateKey | str | Path,
    golden: GoldenSet | None = None,
    reference: dict[str, Any] | Path | None = None,
    files: Mapping[str, Path | bytes] | None = None,
    lineage: dict[str, Any] | None = None,
    created: str | None = None,
    task: str = "classification",
) -> Manifest:
    """Write a signed bundle to ``out`` (atomically) and return its manifest.

    ``files`` maps extra archive names (``model_card.md``, ``charts/x.png``,
    ``report.json``) to paths or bytes; they are listed in ``manifest.files``.
    """
    if not artifacts:
        raise BundleError("a bundle needs at least one model artifact")
    key = (
        private_key if isinstance(private_key, Ed25519PrivateKey) else load_private_key(private_key)
    )
    created = created or utc_now_iso()
    members: dict[str, Path | bytes] = {}

    def add(arcname: str, source: Path | bytes) -> FileEntry:
        safe = check_member_name(arcname)
        if safe != arcname or safe == MANIFEST_NAME:
            raise BundleError(f"invalid bundle member name {arcname!r}")
        if safe in members:
            raise BundleError(f"two files would be stored as {safe}")
        members[safe] = source
        size, digest = _digest(source)
        return FileEntry(safe, digest, size)

    seen_targets: set[str] = set()
    art_entries: list[Artifact] = []
    for src in artifacts:
        if src.runtime not in RUNTIMES or src.precision not in PRECISIONS:
            raise BundleError(f"unknown variant {src.target!r}")
        if src.target in seen_targets:
            raise BundleError(f"two artifacts for {src.target}")
        seen_targets.add(src.target)
        (main_name, main_path), *comp = src.arcnames()
        main = add(main_name, main_path)
        comps = [add(n, p) for n, p in comp]
        art_entries.append(
            Artifact(
                file=main.file,
                runtime=src.runtime,
                precision=src.precision,
                sha256=main.sha256,
                size=main.size,
                metrics=src.manifest_metrics(),
                inputs=list(src.inputs),
                outputs=list(src.outputs),
                companions=comps,
            )
        )
    golden_entry = None
    if golden is not None:
        arrays = {
            "inputs": np.asarray(golden.inputs, dtype=np.float32),
            "outputs": np.asarray(golden.outputs, dtype=np.float32),
        }
        if golden.labels is not None:
            arrays["labels"] = np.asarray(golden.labels)
        golden_entry = Golden(add(GOLDEN_NAME, npz_bytes(arrays)), dict(golden.tolerance))
    ref_entry = None
    if isinstance(reference, dict):
        ref_bytes = json.dumps(to_json_data(reference), indent=1, sort_keys=True).encode()
        ref_entry = add(REFERENCE_NAME, ref_bytes)
    elif reference is not None:
        ref_entry = add(REFERENCE_NAME, Path(reference))
    extra = [add(n, s) for n, s in sorted((files or {}).items())]

    manifest = Manifest(
        name=name,
        version=version,
        created=created,
        task=task,
        labels=list(labels),
        inputs=list(inputs),
        outputs=list(outputs),
        preprocessing=dict(preprocessing),
        artifacts=art_entries,
        golden=golden_entry,
        reference=ref_entry,
        files=extra,
        lineage=dict(lineage or {}),
    )
    signed = sign_manifest(manifest, key)
    write_archive(Path(out), signed, members, mtime=_created_epoch(created))
    return signed


def _tarinfo(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def write_archive(
    out: Path, manifest: Manifest, members: Mapping[str, Path | bytes], *, mtime: int
) -> None:
    """Write manifest.json then ``members`` (sorted) as a deterministic .tar.gz."""
    manifest_bytes = json.dumps(manifest.to_dict(), indent=1, sort_keys=True).encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as raw:
            _write_tar_gz(raw, manifest_bytes, members, mtime)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise BundleError(f"cannot write bundle {out}: {exc.strerror or exc}") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write_tar_gz(
    raw: IO[bytes], manifest_bytes: bytes, members: Mapping[str, Path | bytes], mtime: int
) -> None:
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        tar.addfile(_tarinfo(MANIFEST_NAME, len(manifest_bytes), mtime), io.BytesIO(manifest_bytes))
        for arcname in sorted(members):
            source = members[arcname]
            if isinstance(source, bytes):
                tar.addfile(_tarinfo(arcname, len(source), mtime), io.BytesIO(source))
                continue
            with source.open("rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                tar.addfile(_tarinfo(arcname, size, mtime), fh)
