"""The public wire contract shared by the agent, the hub and third-party consumers.

This package's face: import every name from ``edge.contract``, not its modules.

Everything that crosses a process boundary is defined here and only here: MQTT topics,
the typed payloads on them, and the bundle manifest. Payloads are JSON objects that carry
``schema`` (``edgekit.<kind>/<major>``), ``device``, ``ts`` (unix seconds, float) and ``seq``
(per-device, per-boot monotonic counter; consumers de-duplicate by ``(device, boot, seq)``).
JSON Schema files for every payload live in ``docs/schemas/``.

Parsing is strict about what it needs and tolerant of what it does not know: unknown keys
are ignored, so a newer minor version of a producer never breaks an older consumer.
"""

from edge.contract.histogram import LATENCY_BUCKETS_S, LatencyBuckets, latency_bucket
from edge.contract.manifest import (
    BUNDLE_FORMAT,
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
from edge.contract.messages import (
    CMD_KINDS,
    Command,
    Envelope,
    Event,
    InferRequest,
    InferResponse,
    ModelRef,
    Status,
    Telemetry,
)
from edge.contract.requirements import (
    INCOMPATIBLE,
    REQUIRES_KEY,
    Requirements,
    normalise_arch,
    parse_version,
    runnable,
    variant_problem,
)
from edge.contract.topics import (
    CMD,
    DEVICE_ID_RE,
    EVENTS,
    INFER_REQ,
    INFER_RES,
    SCHEMA_CMD,
    SCHEMA_EVENT,
    SCHEMA_INFER_REQ,
    SCHEMA_INFER_RES,
    SCHEMA_STATUS,
    SCHEMA_TELEMETRY,
    STATUS,
    TELEMETRY,
    TOPIC_KINDS,
    TOPIC_ROOT,
    parse_topic,
    topic,
    topic_filter,
    validate_device_id,
)
from edge.contract.wire import (
    MAX_PAYLOAD_BYTES,
    canonical_json,
    decode_json,
    encode_json,
)

__all__ = [
    "BUNDLE_FORMAT",
    "CMD",
    "CMD_KINDS",
    "DEVICE_ID_RE",
    "EVENTS",
    "INCOMPATIBLE",
    "INFER_REQ",
    "INFER_RES",
    "LATENCY_BUCKETS_S",
    "MANIFEST_NAME",
    "MAX_PAYLOAD_BYTES",
    "PRECISIONS",
    "REQUIRES_KEY",
    "RUNTIMES",
    "SCHEMA_CMD",
    "SCHEMA_EVENT",
    "SCHEMA_INFER_REQ",
    "SCHEMA_INFER_RES",
    "SCHEMA_STATUS",
    "SCHEMA_TELEMETRY",
    "STATUS",
    "TELEMETRY",
    "TOPIC_KINDS",
    "TOPIC_ROOT",
    "VARIANT_TOLERANCE_KEY",
    "Artifact",
    "Command",
    "Envelope",
    "Event",
    "FileEntry",
    "Golden",
    "InferRequest",
    "InferResponse",
    "LatencyBuckets",
    "Manifest",
    "ModelRef",
    "Requirements",
    "Status",
    "Telemetry",
    "TensorSpec",
    "canonical_json",
    "decode_json",
    "encode_json",
    "latency_bucket",
    "normalise_arch",
    "parse_topic",
    "parse_version",
    "runnable",
    "topic",
    "topic_filter",
    "validate_device_id",
    "variant_problem",
]
