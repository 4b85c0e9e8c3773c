"""The bundle manifest: what a bundle holds, with hashes, sizes and the signature."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from edge.contract.requirements import REQUIRES_KEY, Requirements
from edge.contract.wire import canonical_json
from edge.errors import ManifestError

BUNDLE_FORMAT = "edgekit.bundle/1"
MANIFEST_NAME = "manifest.json"
RUNTIMES = ("litert", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "int8")
TOLERANCE_KEYS = ("max_mean_abs_error", "min_top1_agreement")
# An artifact's own self-test tolerance lives in its ``metrics`` under this key: agents
# that predate it keep metrics verbatim, so their signature check still holds and they
# fall back to ``golden.tolerance`` (a new artifact key would break their signature check).
VARIANT_TOLERANCE_KEY = "golden_tolerance"


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output. ``shape`` includes the batch dimension (-1 = dynamic).

    ``scale``/``zero_point`` are set for int8 tensors: real = scale * (q - zero_point).
    """

    name: str
    shape: list[int]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @staticmethod
    def parse(obj: Any, where: str) -> TensorSpec:
        if not isinstance(obj, dict):
            raise ManifestError(f"{where}: tensor spec must be an object")
        shape = obj.get("shape")
        if not isinstance(shape, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in shape
        ):
            raise ManifestError(f"{where}: 'shape' must be a list of integers")
        name, dtype = obj.get("name"), obj.get("dtype")
        if not isinstance(name, str) or not isinstance(dtype, str):
            raise ManifestError(f"{where}: 'name' and 'dtype' must be strings")
        scale, zp = obj.get("scale"), obj.get("zero_point")
        return TensorSpec(
            name=name,
            shape=list(shape),
            dtype=dtype,
            scale=float(scale) if scale is not None else None,
            zero_point=int(zp) if zp is not None else None,
        )


@dataclass(frozen=True)
class FileEntry:
    """A file inside the bundle, covered by its sha256 and size."""

    file: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def parse(obj: Any, where: str) -> FileEntry:
        if not isinstance(obj, dict):
            raise ManifestError(f"{where}: file entry must be an object")
        f, h, s = obj.get("file"), obj.get("sha256"), obj.get("size")
        if not isinstance(f, str) or not f:
            raise ManifestError(f"{where}: 'file' must be a non-empty string")
        if not isinstance(h, str) or not re.fullmatch(r"[0-9a-f]{64}", h):
            raise ManifestError(f"{where}: 'sha256' must be 64 lowercase hex digits")
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise ManifestError(f"{where}: 'size' must be a non-negative integer")
        return FileEntry(file=f, sha256=h, size=s)


@dataclass(frozen=True)
class Artifact:
    """One model variant: a runtime, a precision, its file(s) and measured metrics.

    ``companions`` are extra files the runtime needs (OpenVINO's ``.bin``).
    ``inputs``/``outputs`` are the variant's own tensors (int8 ones carry scale/zero-point);
    the manifest's top-level ``inputs``/``outputs`` are the float interface callers use.
    ``tolerance`` is the variant's own self-test tolerance (``metrics.golden_tolerance``),
    None for bundles that only carry the shared ``golden.tolerance``. ``requires`` is what
    the variant needs from a device (``metrics.requires``), None when it states nothing.
    """

    file: str
    runtime: str
    precision: str
    sha256: str
    size: int
    metrics: dict[str, Any]
    inputs: list[TensorSpec] = field(default_factory=list)
    outputs: list[TensorSpec] = field(default_factory=list)
    companions: list[FileEntry] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"{self.runtime}-{self.precision}"

    @property
    def tolerance(self) -> dict[str, float] | None:
        """This variant's own golden tolerance (checked by :meth:`parse`), or None."""
        tol = self.metrics.get(VARIANT_TOLERANCE_KEY)
        return {k: float(v) for k, v in tol.items()} if isinstance(tol, dict) else None

    @property
    def requires(self) -> Requirements | None:
        """What this variant needs from a device (``metrics.requires``, checked by
        :meth:`parse`), or None for bundles that state nothing (then only the runtime's
        presence is checked). See edge/contract/requirements.py."""
        req = self.metrics.get(REQUIRES_KEY)
        return Requirements.parse(req, REQUIRES_KEY) if isinstance(req, dict) else None

    def entries(self) -> list[FileEntry]:
        return [FileEntry(self.file, self.sha256, self.size), *self.companions]

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "runtime": self.runtime,
            "precision": self.precision,
            "sha256": self.sha256,
            "size": self.size,
            "metrics": self.metrics,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "companions": [c.to_dict() for c in self.companions],
        }

    @staticmethod
    def parse(obj: Any, where: str) -> Artifact:
        entry = FileEntry.parse(obj, where)
        runtime, precision = obj.get("runtime"), obj.get("precision")
        if runtime not in RUNTIMES:
            raise ManifestError(f"{where}: runtime must be one of {', '.join(RUNTIMES)}")
        if precision not in PRECISIONS:
            raise ManifestError(f"{where}: precision must be one of {', '.join(PRECISIONS)}")
        metrics = obj.get("metrics", {})
        if not isinstance(metrics, dict):
            raise ManifestError(f"{where}: 'metrics' must be an object")
        if VARIANT_TOLERANCE_KEY in metrics:
            _check_tolerance(metrics[VARIANT_TOLERANCE_KEY], f"{where}: metrics.golden_tolerance")
        if metrics.get(REQUIRES_KEY) is not None:  # null: nothing stated
            Requirements.parse(metrics[REQUIRES_KEY], f"{where}: metrics.{REQUIRES_KEY}")
        return Artifact(
            file=entry.file,
            runtime=runtime,
            precision=precision,
            sha256=entry.sha256,
            size=entry.size,
            metrics=metrics,
            inputs=[TensorSpec.parse(t, where) for t in obj.get("inputs") or []],
            outputs=[TensorSpec.parse(t, where) for t in obj.get("outputs") or []],
            companions=[FileEntry.parse(c, where) for c in obj.get("companions") or []],
        )


def _check_tolerance(tol: Any, where: str) -> None:
    """A tolerance object: only the known keys, each a finite number in its range."""
    if not isinstance(tol, dict) or not tol:
        raise ManifestError(f"{where} must be a non-empty object")
    unknown = sorted(set(tol) - set(TOLERANCE_KEYS))
    if unknown:
        raise ManifestError(f"{where}: unknown key(s) {', '.join(map(str, unknown))}")
    for key, value in tol.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ManifestError(f"{where}: {key} must be a number")
        if not math.isfinite(value) or value < 0:
            raise ManifestError(f"{where}: {key} must be a finite number >= 0")
    if tol.get("min_top1_agreement", 0.0) > 1:
        raise ManifestError(f"{where}: min_top1_agreement must be at most 1")


@dataclass(frozen=True)
class Golden:
    """The self-test set: ``inputs`` (model-domain, after preprocessing) and the float
    model's ``outputs`` in one .npz. ``tolerance`` keys: ``max_mean_abs_error`` (of the
    scores) and ``min_top1_agreement`` (share of samples with the same arg-max)."""

    entry: FileEntry
    tolerance: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        return {**self.entry.to_dict(), "tolerance": self.tolerance}

    @staticmethod
    def parse(obj: Any) -> Golden:
        entry = FileEntry.parse(obj, "golden")
        tol = obj.get("tolerance")
        if not isinstance(tol, dict) or not all(isinstance(v, (int, float)) for v in tol.values()):
            raise ManifestError("golden: 'tolerance' must be an object of numbers")
        return Golden(entry=entry, tolerance={k: float(v) for k, v in tol.items()})


@dataclass(frozen=True)
class Manifest:
    """manifest.json at the root of a bundle. See docs/bundle-format.md."""

    name: str
    version: int
    created: str
    labels: list[str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    preprocessing: dict[str, Any]
    artifacts: list[Artifact]
    golden: Golden | None
    reference: FileEntry | None
    lineage: dict[str, Any]
    files: list[FileEntry] = field(default_factory=list)  # model card, charts, reports
    task: str = "classification"
    signature: dict[str, str] | None = None
    format: str = BUNDLE_FORMAT

    def all_entries(self) -> list[FileEntry]:
        """Every file the manifest covers (each must exist in the archive)."""
        out: list[FileEntry] = []
        for a in self.artifacts:
            out.extend(a.entries())
        if self.golden:
            out.append(self.golden.entry)
        if self.reference:
            out.append(self.reference)
        out.extend(self.files)
        return out

    def artifact(self, runtime: str, precision: str) -> Artifact | None:
        for a in self.artifacts:
            if a.runtime == runtime and a.precision == precision:
                return a
        return None

    def to_dict(self, *, with_signature: bool = True) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format": self.format,
            "name": self.name,
            "version": self.version,
            "created": self.created,
            "task": self.task,
            "labels": list(self.labels),
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "preprocessing": self.preprocessing,
            "artifacts": [a.to_dict() for a in self.artifacts],
            "golden": self.golden.to_dict() if self.golden else None,
            "reference": self.reference.to_dict() if self.reference else None,
            "files": [f.to_dict() for f in self.files],
            "lineage": self.lineage,
        }
        if with_signature and self.signature is not None:
            d["signature"] = self.signature
        return d

    def canonical_bytes(self) -> bytes:
        """The exact bytes the Ed25519 signature covers: sorted keys, no whitespace."""
        return canonical_json(self.to_dict(with_signature=False))

    @staticmethod
    def parse(obj: Any) -> Manifest:
        if not isinstance(obj, dict):
            raise ManifestError("manifest must be a JSON object")
        fmt = obj.get("format")
        if not isinstance(fmt, str) or fmt.rpartition("/")[0] != BUNDLE_FORMAT.rpartition("/")[0]:
            raise ManifestError(f"manifest: 'format' must be {BUNDLE_FORMAT!r}, got {fmt!r}")
        if fmt != BUNDLE_FORMAT:
            raise ManifestError(f"manifest: unsupported format version {fmt!r}")
        name, version = obj.get("name"), obj.get("version")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
            raise ManifestError("manifest: 'name' must be 1-64 letters, digits, '.', '_' or '-'")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ManifestError("manifest: 'version' must be a positive integer")
        labels = obj.get("labels")
        if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels):
            raise ManifestError("manifest: 'labels' must be a list of strings")
        for key in ("inputs", "outputs", "artifacts"):
            if not isinstance(obj.get(key), list) or not obj[key]:
                raise ManifestError(f"manifest: '{key}' must be a non-empty list")
        pre, lineage = obj.get("preprocessing", {}), obj.get("lineage", {})
        if not isinstance(pre, dict) or not isinstance(lineage, dict):
            raise ManifestError("manifest: 'preprocessing' and 'lineage' must be objects")
        sig = obj.get("signature")
        if sig is not None and (
            not isinstance(sig, dict) or not all(isinstance(v, str) for v in sig.values())
        ):
            raise ManifestError("manifest: 'signature' must be an object of strings")
        created = obj.get("created")
        if not isinstance(created, str):
            raise ManifestError("manifest: 'created' must be an ISO 8601 string")
        return Manifest(
            format=fmt,
            name=name,
            version=version,
            created=created,
            task=str(obj.get("task", "classification")),
            labels=list(labels),
            inputs=[TensorSpec.parse(t, "inputs") for t in obj["inputs"]],
            outputs=[TensorSpec.parse(t, "outputs") for t in obj["outputs"]],
            preprocessing=pre,
            artifacts=[
                Artifact.parse(a, f"artifacts[{i}]") for i, a in enumerate(obj["artifacts"])
            ],
            golden=Golden.parse(obj["golden"]) if obj.get("golden") else None,
            reference=FileEntry.parse(obj["reference"], "reference")
            if obj.get("reference")
            else None,
            files=[FileEntry.parse(f, "files") for f in obj.get("files") or []],
            lineage=lineage,
            signature=sig,
        )
