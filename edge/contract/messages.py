"""The typed payloads: status, telemetry, events, commands, inference requests and replies."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from edge.contract.topics import (
    SCHEMA_CMD,
    SCHEMA_EVENT,
    SCHEMA_INFER_RES,
    SCHEMA_STATUS,
    SCHEMA_TELEMETRY,
    validate_device_id,
)
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


SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")


def _sha256(value: str | None) -> str | None:
    """A digest as 64 lower-case hex characters. The agent names files after it, so anything
    else (``../../x``) is refused here, before it can become part of a path."""
    if value is None:
        return None
    if not SHA256_RE.fullmatch(value):
        raise ContractError("cmd: 'sha256' must be 64 hexadecimal characters")
    return value.lower()


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
            sha256=_sha256(_opt(obj, "sha256", str, "cmd")),
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
