"""The public wire contract shared by the agent, the hub and third-party consumers.

Everything that crosses a process boundary is defined here and only here: MQTT topics,
the typed payloads on them, and the bundle manifest. Payloads are JSON objects that carry
``schema`` (``edgekit.<kind>/<major>``), ``device``, ``ts`` (unix seconds, float) and ``seq``
(per-device, per-boot monotonic counter; consumers de-duplicate by ``(device, boot, seq)``).
JSON Schema files for every payload live in ``docs/schemas/``.

Parsing is strict about what it needs and tolerant of what it does not know: unknown keys
are ignored, so a newer minor version of a producer never breaks an older consumer.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from edge.errors import ContractError, ManifestError

TOPIC_ROOT = "edgekit/v1"
DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

# Topic leaves under edgekit/v1/<device>/
STATUS = "status"
TELEMETRY = "telemetry"
EVENTS = "events"
CMD = "cmd"
INFER_REQ = "infer/req"
INFER_RES = "infer/res"
TOPIC_KINDS = (STATUS, TELEMETRY, EVENTS, CMD, INFER_REQ, INFER_RES)

SCHEMA_STATUS = "edgekit.status/1"
SCHEMA_TELEMETRY = "edgekit.telemetry/1"
SCHEMA_EVENT = "edgekit.event/1"
SCHEMA_CMD = "edgekit.cmd/1"
SCHEMA_INFER_REQ = "edgekit.infer.req/1"
SCHEMA_INFER_RES = "edgekit.infer.res/1"

BUNDLE_FORMAT = "edgekit.bundle/1"
MANIFEST_NAME = "manifest.json"
RUNTIMES = ("litert", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "int8")
MAX_PAYLOAD_BYTES = 1 << 20  # 1 MiB; larger MQTT payloads are refused before JSON parsing


def validate_device_id(device: str) -> str:
    """Device ids become MQTT topic levels, so they must not contain ``/``, ``+`` or ``#``."""
    if not isinstance(device, str) or not DEVICE_ID_RE.match(device):
        raise ContractError(
            f"invalid device id {device!r}: use 1-128 letters, digits, '.', '_' or '-'"
        )
    return device


def topic(device: str, kind: str) -> str:
    """The topic for one device and one leaf, e.g. ``edgekit/v1/cam-1/status``."""
    if kind not in TOPIC_KINDS:
        raise ContractError(f"unknown topic kind {kind!r}")
    return f"{TOPIC_ROOT}/{validate_device_id(device)}/{kind}"


def topic_filter(kind: str, device: str = "+") -> str:
    """A subscription filter for one leaf over all devices (``+``) or one device."""
    if kind not in TOPIC_KINDS:
        raise ContractError(f"unknown topic kind {kind!r}")
    return f"{TOPIC_ROOT}/{device}/{kind}"


def parse_topic(name: str) -> tuple[str, str]:
    """Split a topic into ``(device, kind)``; raise ContractError if it is not ours."""
    prefix = TOPIC_ROOT + "/"
    if not name.startswith(prefix):
        raise ContractError(f"topic {name!r} is not under {TOPIC_ROOT}")
    device, _, kind = name[len(prefix) :].partition("/")
    if kind not in TOPIC_KINDS:
        raise ContractError(f"topic {name!r} has unknown kind {kind!r}")
    return validate_device_id(device), kind


# --------------------------------------------------------------------------- helpers


def decode_json(payload: bytes | str, *, limit: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """Decode a JSON object payload, refusing oversized or non-object payloads."""
    if len(payload) > limit:
        raise ContractError(f"payload of {len(payload)} bytes exceeds the {limit} byte limit")
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"payload is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ContractError(f"payload must be a JSON object, got {type(obj).__name__}")
    return obj


def encode_json(obj: dict[str, Any]) -> bytes:
    """Compact JSON encoding for the wire (NaN is refused: it is not JSON)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _req(obj: dict[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise ContractError(f"{where}: missing required field {key!r}")
    value = obj[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ContractError(f"{where}: field {key!r} has wrong type bool")
    if not isinstance(value, types):
        raise ContractError(f"{where}: field {key!r} has wrong type {type(value).__name__}")
    return value


def _opt(obj: dict[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    if obj.get(key) is None:
        return None
    return _req(obj, key, types, where)


def _check_schema(obj: dict[str, Any], expected: str) -> None:
    schema = obj.get("schema")
    if not isinstance(schema, str):
        raise ContractError(f"payload has no 'schema' (expected {expected})")
    name, _, major = schema.rpartition("/")
    exp_name, _, exp_major = expected.rpartition("/")
    if name != exp_name or major != exp_major:
        raise ContractError(f"payload schema {schema!r} is not {expected!r}")


@dataclass(frozen=True)
class Envelope:
    """The fields every agent-published payload carries."""

    device: str
    ts: float
    seq: int

    @staticmethod
    def parse(obj: dict[str, Any], where: str) -> Envelope:
        return Envelope(
            device=validate_device_id(_req(obj, "device", str, where)),
            ts=float(_req(obj, "ts", (int, float), where)),
            seq=int(_req(obj, "seq", int, where)),
        )


@dataclass(frozen=True)
class ModelRef:
    """Which model a device runs, as the device itself reports it."""

    name: str
    version: int
    runtime: str | None = None
    precision: str | None = None

    @staticmethod
    def parse(obj: Any, where: str) -> ModelRef | None:
        if obj is None:
            return None
        if not isinstance(obj, dict):
            raise ContractError(f"{where}: 'model' must be an object or null")
        return ModelRef(
            name=_req(obj, "name", str, where),
            version=_req(obj, "version", int, where),
            runtime=_opt(obj, "runtime", str, where),
            precision=_opt(obj, "precision", str, where),
        )


# --------------------------------------------------------------------------- payloads


@dataclass(frozen=True)
class Status:
    """Retained on ``status``; the MQTT will publishes the ``offline`` form."""

    device: str
    ts: float
    seq: int
    state: str  # "online" | "offline"
    agent_version: str | None = None
    model: ModelRef | None = None
    boot: str | None = None  # random id per agent start, so consumers can reset seq tracking
    enrolled: bool = False
    capabilities: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema"] = SCHEMA_STATUS
        return d

    @staticmethod
    def parse(obj: dict[str, Any]) -> Status:
        _check_schema(obj, SCHEMA_STATUS)
        env = Envelope.parse(obj, "status")
        state = _req(obj, "state", str, "status")
        if state not in ("online", "offline"):
            raise ContractError(f"status: state must be online or offline, got {state!r}")
        return Status(
            device=env.device,
            ts=env.ts,
            seq=env.seq,
            state=state,
            agent_version=_opt(obj, "agent_version", str, "status"),
            model=ModelRef.parse(obj.get("model"), "status"),
            boot=_opt(obj, "boot", str, "status"),
            enrolled=bool(obj.get("enrolled", False)),
            capabilities=_opt(obj, "capabilities", dict, "status") or {},
        )


@dataclass(frozen=True)
class Telemetry:
    """Periodic KPIs of one device. ``metrics`` keys are documented in docs/schemas."""

    device: str
    ts: float
    seq: int
    model: ModelRef | None
    metrics: dict[str, Any]
    boot: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "schema": SCHEMA_TELEMETRY,
            "device": self.device,
            "ts": self.ts,
            "seq": self.seq,
            "boot": self.boot,
            "model": asdict(self.model) if self.model else None,
        }
        d.update(self.metrics)
        return d

    @staticmethod
    def parse(obj: dict[str, Any]) -> Telemetry:
        _check_schema(obj, SCHEMA_TELEMETRY)
        env = Envelope.parse(obj, "telemetry")
        skip = {"schema", "device", "ts", "seq", "boot", "model"}
        return Telemetry(
            device=env.device,
            ts=env.ts,
            seq=env.seq,
            boot=_opt(obj, "boot", str, "telemetry"),
            model=ModelRef.parse(obj.get("model"), "telemetry"),
            metrics={k: v for k, v in obj.items() if k not in skip},
        )


@dataclass(frozen=True)
class Event:
    """One thing that happened: a deploy step, a rollback, an error, an alert."""

    device: str
    ts: float
    seq: int
    kind: str  # "deploy" | "rollback" | "alert" | "error" | "info"
    message: str
    step: str | None = None  # deploy step: downloading, verifying, self_test, shadow, ...
    rollout: str | None = None
    command: str | None = None  # id of the command this event answers
    version: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    boot: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema"] = SCHEMA_EVENT
        return d

    @staticmethod
    def parse(obj: dict[str, Any]) -> Event:
        _check_schema(obj, SCHEMA_EVENT)
        env = Envelope.parse(obj, "event")
        return Event(
            device=env.device,
            ts=env.ts,
            seq=env.seq,
            kind=_req(obj, "kind", str, "event"),
            message=_req(obj, "message", str, "event"),
            step=_opt(obj, "step", str, "event"),
            rollout=_opt(obj, "rollout", str, "event"),
            command=_opt(obj, "command", str, "event"),
            version=_opt(obj, "version", int, "event"),
            detail=_opt(obj, "detail", dict, "event") or {},
            boot=_opt(obj, "boot", str, "event"),
        )


CMD_KINDS = ("deploy", "rollback", "config", "ping")


@dataclass(frozen=True)
class Command:
    """Sent to ``cmd``. A deploy names the bundle by URL with its sha256; it expires."""

    id: str
    kind: str
    ts: float
    name: str | None = None  # model name (deploy, rollback)
    version: int | None = None  # model version (deploy, rollback)
    url: str | None = None  # bundle download URL (deploy); hub URLs need the device token
    sha256: str | None = None
    size: int | None = None
    rollout: str | None = None
    expires: float | None = None  # unix seconds; an expired command is refused
    config: dict[str, Any] = field(default_factory=dict)  # kind == "config"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema"] = SCHEMA_CMD
        return d

    @staticmethod
    def parse(obj: dict[str, Any]) -> Command:
        _check_schema(obj, SCHEMA_CMD)
        kind = _req(obj, "kind", str, "cmd")
        if kind not in CMD_KINDS:
            raise ContractError(f"cmd: unknown kind {kind!r} (one of {', '.join(CMD_KINDS)})")
        cmd = Command(
            id=_req(obj, "id", str, "cmd"),
            kind=kind,
            ts=float(_req(obj, "ts", (int, float), "cmd")),
            name=_opt(obj, "name", str, "cmd"),
            version=_opt(obj, "version", int, "cmd"),
            url=_opt(obj, "url", str, "cmd"),
            sha256=_opt(obj, "sha256", str, "cmd"),
            size=_opt(obj, "size", int, "cmd"),
            rollout=_opt(obj, "rollout", str, "cmd"),
            expires=_opt(obj, "expires", (int, float), "cmd"),
            config=_opt(obj, "config", dict, "cmd") or {},
        )
        if kind == "deploy" and (cmd.url is None or cmd.sha256 is None or cmd.version is None):
            raise ContractError("cmd: a deploy needs 'url', 'sha256' and 'version'")
        if kind == "rollback" and cmd.version is None:
            raise ContractError("cmd: a rollback needs 'version'")
        return cmd


@dataclass(frozen=True)
class InferRequest:
    """``infer/req``: ``id`` plus ``inputs`` (a list, nested list, or named-feature object)."""

    id: str
    inputs: Any
    label: Any = None  # optional ground truth, for live accuracy

    @staticmethod
    def id_of(obj: dict[str, Any]) -> str | None:
        """The request's usable ``id`` (a non-empty string or an integer), else None: a
        request without one cannot be answered."""
        rid = obj.get("id")
        if not isinstance(rid, (str, int)) or isinstance(rid, bool) or rid == "":
            return None
        return str(rid)

    @staticmethod
    def parse(obj: dict[str, Any]) -> InferRequest:
        rid = InferRequest.id_of(obj)
        if rid is None:
            raise ContractError("infer request: missing or invalid 'id'")
        if "inputs" not in obj:
            raise ContractError("infer request: missing 'inputs'")
        return InferRequest(id=rid, inputs=obj["inputs"], label=obj.get("label"))


@dataclass(frozen=True)
class InferResponse:
    """``infer/res``: the same ``id`` and either a prediction or an ``error``."""

    id: str
    device: str
    ts: float
    label: str | None = None
    scores: list[float] | None = None
    version: int | None = None
    latency_ms: float | None = None
    error: dict[str, str] | None = None  # {"code": ..., "message": ...}

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        d["schema"] = SCHEMA_INFER_RES
        return d

    @staticmethod
    def parse(obj: dict[str, Any]) -> InferResponse:
        _check_schema(obj, SCHEMA_INFER_RES)
        return InferResponse(
            id=str(_req(obj, "id", (str, int), "infer response")),
            device=_req(obj, "device", str, "infer response"),
            ts=float(_req(obj, "ts", (int, float), "infer response")),
            label=_opt(obj, "label", str, "infer response"),
            scores=_opt(obj, "scores", list, "infer response"),
            version=_opt(obj, "version", int, "infer response"),
            latency_ms=_opt(obj, "latency_ms", (int, float), "infer response"),
            error=_opt(obj, "error", dict, "infer response"),
        )


# --------------------------------------------------------------------------- manifest


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


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, compact, UTF-8) for hashing and signing."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
