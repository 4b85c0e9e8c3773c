"""The typed payloads: status, telemetry, events, commands, inference requests and replies."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from edge.contract.histogram import LatencyBuckets
from edge.contract.shadow import ShadowSettings
from edge.contract.topics import (
    SCHEMA_CMD,
    SCHEMA_EVENT,
    SCHEMA_INFER_RES,
    SCHEMA_STATUS,
    SCHEMA_TELEMETRY,
    validate_device_id,
)
from edge.contract.wire import canonical_json
from edge.contract.wire import check_schema as _check_schema
from edge.contract.wire import opt as _opt
from edge.contract.wire import req as _req
from edge.errors import ContractError


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
    threads: int | None = None  # inference threads the self-test chose (None: not reported)

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
            threads=_opt(obj, "threads", int, where),
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

    def latency_histogram(self) -> LatencyBuckets | None:
        """The interval's ``latency_histogram`` (edge/contract/histogram.py); None when the
        device sent none (older agents), ContractError when it is malformed."""
        return LatencyBuckets.parse(self.metrics.get("latency_histogram"))


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


CMD_KINDS = ("deploy", "rollback", "config", "keys", "ping")
NONCE_RE = re.compile(r"[0-9A-Za-z_-]{16,64}")
SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
MAX_SIZE = 1 << 40  # a declared bundle size beyond 1 TiB is nonsense, not a big model


def _sha256(value: str | None) -> str | None:
    """A digest as 64 lower-case hex characters. The agent names files after it, so anything
    else (``../../x``) is refused here, before it can become part of a path."""
    if value is None:
        return None
    if not SHA256_RE.fullmatch(value):
        raise ContractError("cmd: 'sha256' must be 64 hexadecimal characters")
    return value.lower()


def _nonce(value: str | None) -> str | None:
    if value is not None and not NONCE_RE.fullmatch(value):
        raise ContractError("cmd: 'nonce' must be 16-64 letters, digits, '-' or '_'")
    return value


def _keys(value: dict[str, Any] | None) -> dict[str, list[str]]:
    """``{"add": [PEM, ...], "revoke": [key id, ...]}`` of a ``keys`` command."""
    out: dict[str, list[str]] = {}
    for name, item in (value or {}).items():
        if name not in ("add", "revoke"):
            raise ContractError(f"cmd: 'keys' has unknown field {name!r} (add, revoke)")
        if not isinstance(item, list) or not all(isinstance(x, str) for x in item):
            raise ContractError(f"cmd: 'keys.{name}' must be a list of strings")
        if len(item) > 32:
            raise ContractError(f"cmd: 'keys.{name}' lists more than 32 keys")
        out[name] = list(item)
    return out


@dataclass(frozen=True)
class Command:
    """Sent to ``cmd``. A deploy names the bundle by URL with its sha256 and size.

    Every command names its target ``device``, ``expires`` and carries a random ``nonce``;
    the hub signs it (``sig``: base64 Ed25519 over :meth:`signing_bytes`, by the key
    ``key_id``), so an agent can refuse forged, redirected, expired and replayed commands.
    """

    id: str
    kind: str
    ts: float
    expires: float  # unix seconds; an expired command is refused
    device: str | None = None  # the device it is meant for; signed, so it cannot be moved
    nonce: str | None = None  # random, once per command: the agent refuses a replay
    name: str | None = None  # model name (deploy, rollback)
    version: int | None = None  # model version (deploy, rollback)
    url: str | None = None  # bundle download URL (deploy); hub URLs need the device token
    sha256: str | None = None
    size: int | None = None  # exact bundle size in bytes (deploy); more is never read
    rollout: str | None = None
    config: dict[str, Any] = field(default_factory=dict)  # kind == "config"
    keys: dict[str, list[str]] = field(default_factory=dict)  # kind == "keys"
    shadow: ShadowSettings | None = None  # deploy: the rollout's shadow run, signed
    key_id: str | None = None
    sig: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema"] = SCHEMA_CMD
        for name in ("key_id", "sig", "shadow"):  # absent, not null: older signers' bytes
            if d[name] is None:
                del d[name]
        return d

    @staticmethod
    def signing_bytes(obj: dict[str, Any]) -> bytes:
        """What the signature covers: the whole payload but ``sig``, as canonical JSON."""
        return canonical_json({k: v for k, v in obj.items() if k != "sig"})

    @staticmethod
    def parse(obj: dict[str, Any]) -> Command:
        _check_schema(obj, SCHEMA_CMD)
        kind = _req(obj, "kind", str, "cmd")
        if kind not in CMD_KINDS:
            raise ContractError(f"cmd: unknown kind {kind!r} (one of {', '.join(CMD_KINDS)})")
        device = _opt(obj, "device", str, "cmd")
        cmd = Command(
            id=_req(obj, "id", str, "cmd"),
            kind=kind,
            ts=_finite(_req(obj, "ts", (int, float), "cmd"), "ts"),
            expires=_finite(_req(obj, "expires", (int, float), "cmd"), "expires"),
            device=None if device is None else validate_device_id(device),
            nonce=_nonce(_opt(obj, "nonce", str, "cmd")),
            name=_opt(obj, "name", str, "cmd"),
            version=_opt(obj, "version", int, "cmd"),
            url=_opt(obj, "url", str, "cmd"),
            sha256=_sha256(_opt(obj, "sha256", str, "cmd")),
            size=_opt(obj, "size", int, "cmd"),
            rollout=_opt(obj, "rollout", str, "cmd"),
            config=_opt(obj, "config", dict, "cmd") or {},
            keys=_keys(_opt(obj, "keys", dict, "cmd")),
            shadow=_shadow(obj.get("shadow")),
            key_id=_opt(obj, "key_id", str, "cmd"),
            sig=_opt(obj, "sig", str, "cmd"),
        )
        if kind == "deploy" and (
            cmd.url is None or cmd.sha256 is None or cmd.version is None or cmd.size is None
        ):
            raise ContractError("cmd: a deploy needs 'url', 'sha256', 'size' and 'version'")
        if cmd.size is not None and not 0 < cmd.size <= MAX_SIZE:
            raise ContractError(f"cmd: 'size' must be between 1 and {MAX_SIZE} bytes")
        if cmd.shadow is not None and kind != "deploy":
            raise ContractError("cmd: only a deploy takes 'shadow'")
        if kind == "rollback" and cmd.version is None:
            raise ContractError("cmd: a rollback needs 'version'")
        if kind == "keys" and not cmd.keys:
            raise ContractError("cmd: a keys command needs 'keys' with 'add' or 'revoke'")
        return cmd


def _shadow(value: Any) -> ShadowSettings | None:
    return None if value is None else ShadowSettings.parse(value, "cmd: 'shadow'")


def _finite(value: float, name: str) -> float:
    try:
        out = float(value)
    except OverflowError:  # an integer beyond any float (10**400)
        out = math.inf
    if not math.isfinite(out) or abs(out) > 1e12:
        raise ContractError(f"cmd: {name!r} must be a unix time in seconds")
    return out


MAX_INFER_BATCH = 64  # inputs in one batch request (each payload is also under 1 MiB)


@dataclass(frozen=True)
class InferRequest:
    """``infer/req``: ``id`` plus ``inputs`` (a list, nested list, or named-feature object).

    The batch form (``"batch": true``) takes ``inputs`` as a list of 1..MAX_INFER_BATCH
    inputs, each what a single request takes, and ``label`` (optional) as a list of the
    same length; the reply carries ``predictions``, in order."""

    id: str | int  # returned as sent: an integer id comes back an integer
    inputs: Any
    label: Any = None  # optional ground truth, for live accuracy (batch: a list)
    batch: bool = False

    @staticmethod
    def id_of(obj: dict[str, Any]) -> str | int | None:
        """The request's usable ``id`` (a non-empty string or an integer), with its type,
        else None: a request without one cannot be answered."""
        rid = obj.get("id")
        if not isinstance(rid, (str, int)) or isinstance(rid, bool) or rid == "":
            return None
        return rid

    @staticmethod
    def parse(obj: dict[str, Any]) -> InferRequest:
        rid = InferRequest.id_of(obj)
        if rid is None:
            raise ContractError("infer request: missing or invalid 'id'")
        if "inputs" not in obj:
            raise ContractError("infer request: missing 'inputs'")
        batch = obj.get("batch", False)
        if not isinstance(batch, bool):
            raise ContractError("infer request: 'batch' must be true or false")
        inputs, label = obj["inputs"], obj.get("label")
        if batch:
            if not isinstance(inputs, list) or not 1 <= len(inputs) <= MAX_INFER_BATCH:
                got = f"{len(inputs)} inputs" if isinstance(inputs, list) else "no list"
                raise ContractError(
                    f"infer request: a batch takes 'inputs' as a list of 1 to "
                    f"{MAX_INFER_BATCH} inputs, got {got}"
                )
            if label is not None and (not isinstance(label, list) or len(label) != len(inputs)):
                raise ContractError(
                    "infer request: a batch's 'label' must be a list with one label per input"
                )
        return InferRequest(id=rid, inputs=inputs, label=label, batch=batch)


@dataclass(frozen=True)
class InferResponse:
    """``infer/res``: the same ``id`` (same JSON type) and either a prediction or an ``error``."""

    id: str | int
    device: str
    ts: float
    label: str | None = None
    scores: list[float] | None = None
    version: int | None = None
    latency_ms: float | None = None
    error: dict[str, str] | None = None  # {"code": ..., "message": ...}
    # batch form: one {"label", "index", "scores", "latency_ms", "warnings"?} per input
    predictions: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        d["schema"] = SCHEMA_INFER_RES
        return d

    @staticmethod
    def parse(obj: dict[str, Any]) -> InferResponse:
        _check_schema(obj, SCHEMA_INFER_RES)
        return InferResponse(
            id=_req(obj, "id", (str, int), "infer response"),
            device=_req(obj, "device", str, "infer response"),
            ts=float(_req(obj, "ts", (int, float), "infer response")),
            label=_opt(obj, "label", str, "infer response"),
            scores=_opt(obj, "scores", list, "infer response"),
            version=_opt(obj, "version", int, "infer response"),
            latency_ms=_opt(obj, "latency_ms", (int, float), "infer response"),
            error=_opt(obj, "error", dict, "infer response"),
            predictions=_opt(obj, "predictions", list, "infer response"),
        )
