"""JSON on the wire: the codec every payload goes through, and the strict field readers."""

from __future__ import annotations

import json
from typing import Any

from edge.errors import ContractError

MAX_PAYLOAD_BYTES = 1 << 20  # 1 MiB; larger MQTT payloads are refused before JSON parsing


def decode_json(payload: bytes | str, *, limit: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """Decode a JSON object payload, refusing oversized or non-object payloads."""
    if len(payload) > limit:
        raise ContractError(f"payload of {len(payload)} bytes exceeds the {limit} byte limit")
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"payload is not JSON: {exc}") from exc
    except RecursionError:  # "[[[[..." thousands deep: a parser stack bomb, not data
        raise ContractError("payload is JSON nested too deep") from None
    if not isinstance(obj, dict):
        raise ContractError(f"payload must be a JSON object, got {type(obj).__name__}")
    return obj


def encode_json(obj: dict[str, Any]) -> bytes:
    """Compact JSON encoding for the wire (NaN is refused: it is not JSON)."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode("utf-8")


def req(obj: dict[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise ContractError(f"{where}: missing required field {key!r}")
    value = obj[key]
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ContractError(f"{where}: field {key!r} has wrong type bool")
    if not isinstance(value, types):
        raise ContractError(f"{where}: field {key!r} has wrong type {type(value).__name__}")
    return value


def opt(obj: dict[str, Any], key: str, types: type | tuple[type, ...], where: str) -> Any:
    if obj.get(key) is None:
        return None
    return req(obj, key, types, where)


def check_schema(obj: dict[str, Any], expected: str) -> None:
    schema = obj.get("schema")
    if not isinstance(schema, str):
        raise ContractError(f"payload has no 'schema' (expected {expected})")
    name, _, major = schema.rpartition("/")
    exp_name, _, exp_major = expected.rpartition("/")
    if name != exp_name or major != exp_major:
        raise ContractError(f"payload schema {schema!r} is not {expected!r}")


def canonical_json(obj: Any) -> bytes:
    """Deterministic JSON bytes (sorted keys, compact, UTF-8) for hashing and signing."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
