"""The values the hub takes from one telemetry payload: the stored columns (``Sample``), the
latest-KPI summary kept on the device row, and the staleness window it implies. Every
value is read defensively: a malformed metric becomes None, never an error, because the
raw payload is kept and one bad field must not lose the rest."""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Protocol

from edge.contract import SCHEMA_TELEMETRY, ModelRef, Telemetry, decode_json
from edge.errors import ContractError


def _num(v: Any) -> float | None:
    """A finite number as float, else None (bools, strings, NaN, inf, huge ints).

    Exact types first: this runs ~10 times per ingested message."""
    t = type(v)
    if t is float:
        return v if v - v == 0.0 else None  # inf - inf and nan - nan are nan
    if t is not int and (t is bool or not isinstance(v, (int, float))):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _count(v: Any) -> int:
    if isinstance(v, dict):
        return int(sum(n for n in (_num(x) for x in v.values()) if n is not None))
    n = _num(v)
    return int(n) if n is not None and n >= 0 else 0


class TelemetryLike(Protocol):
    """What the store reads from a telemetry message: ``contract.Telemetry`` or the
    bridge's lighter ``TelemetryIn``."""

    @property
    def device(self) -> str: ...
    @property
    def ts(self) -> float: ...
    @property
    def seq(self) -> int: ...
    @property
    def boot(self) -> str | None: ...
    @property
    def model(self) -> ModelRef | None: ...
    @property
    def metrics(self) -> dict[str, Any]: ...


class Sample(NamedTuple):
    """The columns the hub keeps from one telemetry payload (malformed values -> None);
    a tuple, since one is built per ingested message."""

    inferences: int
    errors: int
    error_rate: float | None
    latency_p50: float | None
    latency_p95: float | None
    throughput: float | None
    confidence: float | None
    drift: float | None
    accuracy: float | None

    @staticmethod
    def of(metrics: dict[str, Any]) -> Sample:
        get = metrics.get
        latency, drift, accuracy = get("latency_ms"), get("drift"), get("accuracy")
        p50 = p95 = psi = acc = None
        if type(latency) is dict:
            p50, p95 = _num(latency.get("p50")), _num(latency.get("p95"))
        if type(drift) is dict:
            i, o = _num(drift.get("input_psi")), _num(drift.get("output_psi"))
            psi = o if i is None else i if o is None else max(i, o)
        if type(accuracy) is dict:
            acc = _num(accuracy.get("value"))
        inferences, errors = _count(get("inferences")), _count(get("errors"))
        rate = _num(get("error_rate"))
        if rate is None and inferences + errors:
            rate = errors / (inferences + errors)
        throughput, confidence = _num(get("throughput_per_s")), _num(get("confidence_mean"))
        return Sample(inferences, errors, rate, p50, p95, throughput, confidence, psi, acc)


MAX_DRIFT_FEATURES = 5  # agents send the top 5; more is read as the first 5
MAX_NAME = 128  # characters of a feature name kept (the column's size)
DRIFT_SIGNALS = ("mean", "feature", "output", "confidence")


class DriftSignal(NamedTuple):
    """One signal over its threshold in a telemetry drift block: a feature or channel by
    name, or ``mean`` / ``output`` / ``confidence`` (named as their kind)."""

    kind: str  # feature | channel | mean | output | confidence
    name: str
    psi: float
    threshold: float


class DriftReading(NamedTuple):
    """What one telemetry message says about drift: whether it alerts, and what crossed."""

    alert: bool
    signals: tuple[DriftSignal, ...]


def _psi(v: Any) -> float | None:
    n = _num(v)
    return n if n is not None and n >= 0 else None


def _feature(v: Any) -> tuple[str, float] | None:
    """``{"name": str, "psi": number}`` as a tuple, else None (malformed entries are skipped)."""
    if type(v) is not dict:
        return None
    name, psi = v.get("name"), _psi(v.get("psi"))
    if type(name) is not str or not name or psi is None:
        return None
    return name[:MAX_NAME], psi


def drift_reading(metrics: dict[str, Any]) -> DriftReading | None:
    """The drift block of a telemetry payload, read defensively: None when it is missing or
    its ``alert`` is not a boolean (the stored state is then left alone); malformed
    features, thresholds and scores are skipped, lists are read up to their first 5."""
    d = metrics.get("drift")
    if type(d) is not dict or type(d.get("alert")) is not bool:
        return None
    if not d["alert"]:
        return DriftReading(False, ())
    signals: dict[tuple[str, str], DriftSignal] = {}
    limit, feature_limit = _psi(d.get("threshold")), _psi(d.get("feature_threshold"))
    kind = "channel" if d.get("granularity") == "channel" else "feature"
    features = d.get("features")
    if type(features) is list and feature_limit is not None:
        for entry in features[:MAX_DRIFT_FEATURES]:
            f = _feature(entry)
            if f is not None and f[1] > feature_limit:
                signals.setdefault((kind, f[0]), DriftSignal(kind, f[0], f[1], feature_limit))
    if limit is not None:
        for key, signal in (("input_psi", "mean"), ("output_psi", "output"),
                            ("confidence_psi", "confidence")):  # fmt: skip
            v = _psi(d.get(key))
            if v is not None and v > limit:
                signals[(signal, signal)] = DriftSignal(signal, signal, v, limit)
    return DriftReading(True, tuple(signals.values()))


def drift_summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """``drift_worst`` ({name, psi} or None) and ``drift_alert_on`` for the KPI summary."""
    d = metrics.get("drift")
    if type(d) is not dict:
        return {"drift_worst": None, "drift_alert_on": []}
    worst = _feature(d.get("worst"))
    on = d.get("alert_on")
    alert_on = [x for x in DRIFT_SIGNALS if type(on) is list and x in on[:8]]
    return {
        "drift_worst": {"name": worst[0], "psi": worst[1]} if worst else None,
        "drift_alert_on": alert_on,
    }


def device_kpis(t: TelemetryLike, s: Sample) -> dict[str, Any]:
    """The latest-KPI summary kept on the device row (what the fleet matrix shows)."""
    m = t.metrics
    drift = m.get("drift") if isinstance(m.get("drift"), dict) else {}
    return {
        "model": {"name": t.model.name, "version": t.model.version} if t.model else None,
        "ts": t.ts,
        "error_rate": s.error_rate,
        "p50_latency_ms": s.latency_p50,
        "p95_latency_ms": s.latency_p95,
        "throughput_per_s": s.throughput,
        "confidence": s.confidence,
        "drift": s.drift,
        "drift_alert": isinstance(drift, dict) and drift.get("alert") is True,
        **drift_summary(m),
        "accuracy": s.accuracy,
        "inferences_total": _num(m.get("inferences_total")),
        "cpu_percent": _num(m.get("cpu_percent")),
        "memory_rss_mb": _num(m.get("memory_rss_mb")),
        "interval_s": _num(m.get("interval_s")),
    }


def staleness_window(interval_s: Any, stale_intervals: float, offline_after_s: float) -> float:
    """Seconds of silence after which a device counts as offline without a will."""
    n = _num(interval_s)
    return stale_intervals * n if n is not None and n > 0 else offline_after_s


class TelemetryIn:
    """One telemetry message as the hub ingests it: the envelope fields it needs, the
    decoded payload (``metrics``: the whole object, envelope keys included — the hub only
    reads the metric keys it knows) and the payload text, stored as received so it is
    never re-encoded. Built by ``parse_telemetry``; quacks like ``contract.Telemetry``."""

    __slots__ = ("boot", "device", "metrics", "model", "raw", "seq", "ts")

    def __init__(
        self,
        device: str,
        ts: float,
        seq: int,
        boot: str | None,
        model: ModelRef | None,
        metrics: dict[str, Any],
        raw: str | None,
    ) -> None:
        self.device, self.ts, self.seq, self.boot = device, ts, seq, boot
        self.model, self.metrics, self.raw = model, metrics, raw


def parse_telemetry(device: str, payload: bytes) -> TelemetryIn:
    """Decode a telemetry payload, checking only what the hub relies on (schema, device,
    ts, seq, boot, model); anything unusual goes through the full ``Telemetry.parse`` so
    errors read the same. The metric values are read defensively later (``Sample.of``).
    ContractError for anything malformed."""
    obj = decode_json(payload)
    ts: Any = obj.get("ts")
    seq, boot = obj.get("seq"), obj.get("boot")
    model = obj.get("model")
    if (
        obj.get("schema") != SCHEMA_TELEMETRY
        or obj.get("device") != device
        or type(ts) not in (float, int)
        or type(seq) is not int
        or not (boot is None or type(boot) is str)
        or not (model is None or type(model) is dict)
    ):
        full = Telemetry.parse(obj)  # raises the contract's own error, or accepts a variant
        if full.device != device:
            raise ContractError(f"payload device {full.device!r} differs from topic {device!r}")
        return TelemetryIn(device, full.ts, full.seq, full.boot, full.model, obj, _text(payload))
    ref = ModelRef.parse(model, "telemetry") if model is not None else None
    return TelemetryIn(device, float(ts), seq, boot, ref, obj, _text(payload))


def _text(payload: bytes) -> str | None:
    """The payload as stored text; None when it is not UTF-8 (JSON may be UTF-16/32)."""
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None
