"""Captured samples: what a device uploads to the hub so field data can be labeled.

One upload is a batch document ``{"schema": "edgekit.samples/1", "device": ..., "samples":
[...]}`` POSTed to ``/api/v1/devices/<id>/samples`` with the device token (see
docs/schemas/samples.schema.json). Each sample carries the raw input (a PNG image, a tabular
row with feature names, or a ``.npy`` array), the prediction, the model version, the reason
it was kept and when. Ids are uuid4 hex, chosen on the device, so re-sending is idempotent
and an interrupted upload can simply be resumed.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from dataclasses import dataclass, field
from typing import Any

from edge.contract.topics import validate_device_id
from edge.contract.wire import check_schema, decode_json, opt, req
from edge.errors import ContractError

SCHEMA_SAMPLES = "edgekit.samples/1"
REASONS = (
    "low_confidence",
    "out_of_range",
    "drift",
    "shadow_disagreement",
    "wrong_label",
    "random",
    "requested",
)
INPUT_KINDS = ("image", "tabular", "array")
ARRAY_DTYPES = ("float32", "float64", "float16", "int8", "uint8", "int16", "int32", "int64")
MAX_BATCH = 64  # samples per upload
MAX_BATCH_BYTES = 8 << 20  # one upload document, encoded
MAX_SAMPLE_BYTES = 2 << 20  # the raw input of one sample (PNG / .npy bytes), decoded
MAX_FEATURES = 4096  # columns of one tabular row
MAX_SCORES = 4096  # classes of one prediction
MAX_LABEL_CHARS = 256

SAMPLE_ID_RE = re.compile(r"[0-9a-f]{32}")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ContractError(f"{where} must be a number, got {type(value).__name__}")
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    if not math.isfinite(out):
        raise ContractError(f"{where} must be finite")
    return out


def _label(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ContractError(f"{where} must be a string or null, got {type(value).__name__}")
    if not 0 < len(value) <= MAX_LABEL_CHARS:
        raise ContractError(f"{where} must be 1-{MAX_LABEL_CHARS} characters")
    return value


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise ContractError(f"{where} must be a non-empty base64 string")
    if len(value) > (MAX_SAMPLE_BYTES * 4) // 3 + 4:
        raise ContractError(f"{where} exceeds the {MAX_SAMPLE_BYTES} byte sample limit")
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ContractError(f"{where} is not valid base64: {exc}") from None
    if len(data) > MAX_SAMPLE_BYTES:
        raise ContractError(f"{where} exceeds the {MAX_SAMPLE_BYTES} byte sample limit")
    return data


@dataclass(frozen=True)
class SampleInput:
    """The raw input as the model saw it: ``image`` (PNG bytes), ``tabular`` (named
    features) or ``array`` (``.npy`` bytes with dtype and shape)."""

    kind: str
    data: bytes | None = None  # image: PNG; array: .npy file bytes
    media_type: str | None = None  # image only: "image/png"
    features: dict[str, float | None] | None = None  # tabular only; None = missing value
    dtype: str | None = None  # array only
    shape: tuple[int, ...] | None = None  # array only

    @property
    def extension(self) -> str:
        """The file extension the hub stores this input under."""
        return {"image": "png", "array": "npy"}.get(self.kind, "json")

    @property
    def size(self) -> int:
        """Bytes of raw payload (tabular rows count their JSON-ish size roughly)."""
        if self.data is not None:
            return len(self.data)
        return sum(len(k) + 16 for k in self.features or {})

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "tabular":
            return {"kind": "tabular", "features": dict(self.features or {})}
        data = base64.b64encode(self.data or b"").decode("ascii")
        if self.kind == "image":
            return {"kind": "image", "media_type": self.media_type, "data": data}
        return {
            "kind": "array",
            "dtype": self.dtype,
            "shape": list(self.shape or ()),
            "data": data,
        }

    @staticmethod
    def from_dict(obj: Any, where: str = "sample input") -> SampleInput:
        if not isinstance(obj, dict):
            raise ContractError(f"{where} must be an object")
        kind = req(obj, "kind", str, where)
        if kind == "image":
            return _image(obj, where)
        if kind == "tabular":
            return _tabular(obj, where)
        if kind == "array":
            return _array(obj, where)
        raise ContractError(f"{where}: kind must be one of {', '.join(INPUT_KINDS)}, got {kind!r}")


def _image(obj: dict[str, Any], where: str) -> SampleInput:
    media = req(obj, "media_type", str, where)
    if media != "image/png":
        raise ContractError(f"{where}: media_type must be 'image/png', got {media!r}")
    data = _b64(obj.get("data"), f"{where}.data")
    if not data.startswith(PNG_MAGIC):
        raise ContractError(f"{where}.data is not a PNG image")
    return SampleInput(kind="image", data=data, media_type=media)


def _tabular(obj: dict[str, Any], where: str) -> SampleInput:
    feats = req(obj, "features", dict, where)
    if not feats or len(feats) > MAX_FEATURES:
        raise ContractError(f"{where}.features must have 1-{MAX_FEATURES} entries")
    out: dict[str, float | None] = {}
    for name, value in feats.items():
        if not name or len(name) > MAX_LABEL_CHARS:
            raise ContractError(f"{where}.features has a bad feature name {name!r}")
        out[name] = None if value is None else _number(value, f"{where}.features.{name}")
    return SampleInput(kind="tabular", features=out)


def _array(obj: dict[str, Any], where: str) -> SampleInput:
    dtype = req(obj, "dtype", str, where)
    if dtype not in ARRAY_DTYPES:
        raise ContractError(f"{where}: dtype {dtype!r} is not one of {ARRAY_DTYPES}")
    shape = req(obj, "shape", list, where)
    if len(shape) > 8 or not all(
        isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 1 << 24 for n in shape
    ):
        raise ContractError(f"{where}.shape must be up to 8 non-negative integers")
    data = _b64(obj.get("data"), f"{where}.data")
    if not data.startswith(NPY_MAGIC):
        raise ContractError(f"{where}.data is not a .npy file")
    return SampleInput(kind="array", data=data, dtype=dtype, shape=tuple(shape))


@dataclass(frozen=True)
class Sample:
    """One captured input with what the model made of it and why the device kept it."""

    id: str  # 32 lower-case hex (uuid4), chosen on the device
    captured_at: float  # unix seconds
    reason: str  # one of REASONS
    model_name: str
    model_version: int
    label: str  # predicted label
    input: SampleInput
    index: int | None = None  # predicted class index
    scores: tuple[float, ...] | None = None
    known_label: str | None = None  # ground truth the device was given (replay), if any
    shadow_version: int | None = None
    shadow_label: str | None = None

    @property
    def confidence(self) -> float | None:
        """The top score, or None when the prediction carries no scores."""
        return max(self.scores) if self.scores else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "captured_at": self.captured_at,
            "reason": self.reason,
            "model": {"name": self.model_name, "version": self.model_version},
            "prediction": {
                "label": self.label,
                "index": self.index,
                "scores": None if self.scores is None else list(self.scores),
            },
            "known_label": self.known_label,
            "shadow": None
            if self.shadow_version is None
            else {"version": self.shadow_version, "label": self.shadow_label},
            "input": self.input.to_dict(),
        }

    @staticmethod
    def from_dict(obj: Any) -> Sample:
        if not isinstance(obj, dict):
            raise ContractError("sample must be an object")
        sid = req(obj, "id", str, "sample")
        if not SAMPLE_ID_RE.fullmatch(sid):
            raise ContractError("sample: 'id' must be 32 lower-case hexadecimal characters")
        where = f"sample {sid}"
        captured = _number(req(obj, "captured_at", (int, float), where), f"{where}.captured_at")
        if not 0 <= captured <= 1e11:
            raise ContractError(f"{where}: captured_at must be a unix time in seconds")
        reason = req(obj, "reason", str, where)
        if reason not in REASONS:
            raise ContractError(f"{where}: reason {reason!r} is not one of {', '.join(REASONS)}")
        model = req(obj, "model", dict, where)
        version = req(model, "version", int, f"{where}.model")
        if version < 1:
            raise ContractError(f"{where}.model.version must be >= 1")
        pred = req(obj, "prediction", dict, where)
        index = opt(pred, "index", int, f"{where}.prediction")
        raw_scores = opt(pred, "scores", list, f"{where}.prediction")
        if raw_scores is not None and len(raw_scores) > MAX_SCORES:
            raise ContractError(f"{where}.prediction.scores has more than {MAX_SCORES} entries")
        scores = (
            None
            if raw_scores is None
            else tuple(_number(s, f"{where}.prediction.scores[]") for s in raw_scores)
        )
        if index is not None and (index < 0 or (scores is not None and index >= len(scores))):
            raise ContractError(f"{where}.prediction.index {index} is out of range")
        shadow = opt(obj, "shadow", dict, where)
        shadow_version = None if shadow is None else req(shadow, "version", int, f"{where}.shadow")
        name = req(model, "name", str, f"{where}.model")
        if not name:
            raise ContractError(f"{where}.model.name must not be empty")
        return Sample(
            id=sid,
            captured_at=captured,
            reason=reason,
            model_name=name,
            model_version=version,
            label=_label(req(pred, "label", str, f"{where}.prediction"), f"{where}.label") or "",
            index=index,
            scores=scores,
            known_label=_label(obj.get("known_label"), f"{where}.known_label"),
            shadow_version=shadow_version,
            shadow_label=None if shadow is None else _label(shadow.get("label"), f"{where}.shadow"),
            input=SampleInput.from_dict(req(obj, "input", dict, where), f"{where}.input"),
        )


@dataclass(frozen=True)
class SampleBatch:
    """One upload document: up to MAX_BATCH samples of one device."""

    device: str
    samples: tuple[Sample, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_SAMPLES,
            "device": self.device,
            "samples": [s.to_dict() for s in self.samples],
        }

    @staticmethod
    def from_dict(obj: dict[str, Any]) -> SampleBatch:
        """Parse a whole batch strictly; a bad sample fails the batch (use
        :meth:`parse_lenient` to keep the good ones and report the bad)."""
        batch, rejected = SampleBatch.parse_lenient(obj)
        if rejected:
            raise ContractError(rejected[0]["error"])
        return batch

    @staticmethod
    def parse_lenient(obj: dict[str, Any]) -> tuple[SampleBatch, list[dict[str, str]]]:
        """The batch's valid samples, and ``{"id", "error"}`` for each invalid one.

        The envelope (schema, device, list length) must be right or ContractError is raised;
        a single bad sample is only rejected, so one broken capture cannot block a queue.
        """
        check_schema(obj, SCHEMA_SAMPLES)
        device = validate_device_id(req(obj, "device", str, "samples"))
        items = req(obj, "samples", list, "samples")
        if len(items) > MAX_BATCH:
            raise ContractError(f"samples: {len(items)} samples exceed the batch limit {MAX_BATCH}")
        good: list[Sample] = []
        bad: list[dict[str, str]] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            sid = item.get("id") if isinstance(item, dict) else None
            ref = sid if isinstance(sid, str) else f"#{i}"
            try:
                sample = Sample.from_dict(item)
            except ContractError as exc:
                bad.append({"id": ref, "error": str(exc)})
                continue
            if sample.id in seen:
                bad.append({"id": ref, "error": f"sample {ref} appears twice in the batch"})
                continue
            seen.add(sample.id)
            good.append(sample)
        return SampleBatch(device=device, samples=tuple(good)), bad

    @staticmethod
    def decode(body: bytes) -> SampleBatch:
        """Decode and strictly parse an upload body, refusing one over MAX_BATCH_BYTES."""
        return SampleBatch.from_dict(decode_json(body, limit=MAX_BATCH_BYTES))


@dataclass(frozen=True)
class UploadReceipt:
    """The hub's answer to an upload: which ids it stored, already had, or refused."""

    accepted: tuple[str, ...] = ()
    duplicates: tuple[str, ...] = ()
    rejected: tuple[tuple[str, str], ...] = ()  # (id, error)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": list(self.accepted),
            "duplicates": list(self.duplicates),
            "rejected": [{"id": i, "error": e} for i, e in self.rejected],
        }

    @staticmethod
    def from_dict(obj: dict[str, Any]) -> UploadReceipt:
        def ids(key: str) -> tuple[str, ...]:
            value = obj.get(key) or []
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise ContractError(f"upload receipt: {key!r} must be a list of ids")
            return tuple(value)

        rejected = obj.get("rejected") or []
        if not isinstance(rejected, list) or not all(
            isinstance(r, dict) and isinstance(r.get("id"), str) for r in rejected
        ):
            raise ContractError("upload receipt: 'rejected' must be a list of {id, error}")
        return UploadReceipt(
            accepted=ids("accepted"),
            duplicates=ids("duplicates"),
            rejected=tuple((r["id"], str(r.get("error", ""))) for r in rejected),
        )
