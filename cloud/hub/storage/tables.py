"""Database tables (SQLAlchemy 2 typed ORM). Times are unix seconds (float) everywhere.

Device rows hold what devices REPORT (model, version, runtime, precision), never what the
hub assumes it told them; rollouts decide on these reported values.
"""

from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

ROLES = ("viewer", "operator", "admin")


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    created: Mapped[float] = mapped_column(Float)


class ApiToken(Base):
    """Bearer tokens for the API; only the sha256 of the token is stored."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(128), default="")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created: Mapped[float] = mapped_column(Float)
    last_used: Mapped[float | None] = mapped_column(Float)
    revoked: Mapped[float | None] = mapped_column(Float)  # when; a revoked token is refused


class WebSession(Base):
    """A logged-in browser session; the cookie holds the id, only its sha256 is stored, so
    logout and a password change end the session on the server, not only in the browser."""

    __tablename__ = "web_sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)


class LoginFailure(Base):
    """Failed logins per ``user:NAME`` and ``addr:IP`` key, for throttling (shared by every
    hub process through the database)."""

    __tablename__ = "login_failures"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    first: Mapped[float] = mapped_column(Float)
    locked_until: Mapped[float | None] = mapped_column(Float)


class HubSecret(Base):
    """Secrets the hub itself must read back (its broker password, its command signing key);
    kept in the database so every hub process of one fleet shares them."""

    __tablename__ = "hub_secrets"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created: Mapped[float] = mapped_column(Float)


class EnrollmentToken(Base):
    """One-time tokens a device exchanges for its own credentials."""

    __tablename__ = "enrollment_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created: Mapped[float] = mapped_column(Float)
    expires: Mapped[float | None] = mapped_column(Float)
    used_at: Mapped[float | None] = mapped_column(Float)
    used_by: Mapped[str | None] = mapped_column(String(128))
    # may this token take over a device id that is already enrolled (an admin's decision)
    rebind: Mapped[bool] = mapped_column(Boolean, default=False)


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tags: Mapped[list[Any]] = mapped_column(JSON, default=list)
    enrolled: Mapped[bool] = mapped_column(Boolean, default=False)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    online: Mapped[bool] = mapped_column(Boolean, default=False)
    first_seen: Mapped[float | None] = mapped_column(Float)
    last_seen: Mapped[float | None] = mapped_column(Float)
    agent_version: Mapped[str | None] = mapped_column(String(64))
    model_name: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[int | None] = mapped_column(Integer)
    model_runtime: Mapped[str | None] = mapped_column(String(32))
    model_precision: Mapped[str | None] = mapped_column(String(16))
    capabilities: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    kpis: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    kpis_ts: Mapped[float | None] = mapped_column(Float)
    kpis_boot: Mapped[str | None] = mapped_column(String(64))  # run and seq of the telemetry
    kpis_seq: Mapped[int | None] = mapped_column(Integer)  # that set ``kpis`` (device time)
    # The device's run (``boot``) and the seq of its latest applied status (None: no status
    # yet); ``model_*`` say which report (device clock ``ts``, its topic's ``seq``, ``status``
    # or ``telemetry``) last set the model fields — see cloud/hub/ingest/device_reports.py.
    boot: Mapped[str | None] = mapped_column(String(64))
    seq: Mapped[int | None] = mapped_column(Integer)
    model_ts: Mapped[float | None] = mapped_column(Float)
    model_seq: Mapped[int | None] = mapped_column(Integer)
    model_src: Mapped[str | None] = mapped_column(String(16))
    revoked: Mapped[float | None] = mapped_column(Float)  # when its credentials were cut
    # the device's broker password as Mosquitto dynamic security stores it (PBKDF2-SHA512:
    # base64 ``salt`` and ``password``, ``iterations``); never the password itself
    mqtt_secret: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # the capture policy the hub last SENT (PUT .../capture), with who and when; what the
    # device runs comes back in its telemetry's ``capture`` block (kpis)
    capture: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ModelVersion(Base):
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_models_name_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(String(512))  # relative to the data dir
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    card: Mapped[str] = mapped_column(Text, default="")
    variants: Mapped[list[Any]] = mapped_column(JSON, default=list)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created: Mapped[float] = mapped_column(Float)
    uploaded_by: Mapped[str | None] = mapped_column(String(128))


class Alias(Base):
    __tablename__ = "aliases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    alias: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    updated: Mapped[float] = mapped_column(Float)


class Rollout(Base):
    """Header row; the full pure state (see rollout.py) round-trips through the child rows."""

    __tablename__ = "rollouts"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)  # target, thresholds, gates, soak
    current_wave: Mapped[int] = mapped_column(Integer, default=0)
    baseline: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    gates: Mapped[list[Any]] = mapped_column(JSON, default=list)  # last gate evaluation
    created: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(128))
    waves: Mapped[list[RolloutWave]] = relationship(
        cascade="all, delete-orphan", order_by="RolloutWave.index", lazy="selectin"
    )
    deployments: Mapped[list[Deployment]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )
    audit: Mapped[list[AuditEntry]] = relationship(
        cascade="all, delete-orphan", order_by="AuditEntry.id", lazy="selectin"
    )


class RolloutWave(Base):
    __tablename__ = "rollout_waves"
    rollout_id: Mapped[str] = mapped_column(
        ForeignKey("rollouts.id", ondelete="CASCADE"), primary_key=True
    )
    index: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))  # percent | count
    value: Mapped[float] = mapped_column(Float)
    started: Mapped[float | None] = mapped_column(Float)
    soak_started: Mapped[float | None] = mapped_column(Float)
    finished: Mapped[float | None] = mapped_column(Float)
    approved: Mapped[bool] = mapped_column(Boolean, default=False)


class Deployment(Base):
    """One device in one rollout: what it ran before, what it was told, what it reported."""

    __tablename__ = "deployments"
    rollout_id: Mapped[str] = mapped_column(
        ForeignKey("rollouts.id", ondelete="CASCADE"), primary_key=True
    )
    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    wave: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    updated_by_rollout: Mapped[bool] = mapped_column(Boolean, default=False)
    from_name: Mapped[str | None] = mapped_column(String(64))
    from_version: Mapped[int | None] = mapped_column(Integer)
    command_id: Mapped[str | None] = mapped_column(String(96))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    ordered_at: Mapped[float | None] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text, default="")


class AuditEntry(Base):
    __tablename__ = "rollout_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rollout_id: Mapped[str] = mapped_column(
        ForeignKey("rollouts.id", ondelete="CASCADE"), index=True
    )
    ts: Mapped[float] = mapped_column(Float)
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(128))


class TelemetryRaw(Base):
    __tablename__ = "telemetry_raw"
    __table_args__ = (Index("ix_telemetry_raw_device_ts", "device_id", "ts"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128))
    ts: Mapped[float] = mapped_column(Float, index=True)
    seq: Mapped[int] = mapped_column(Integer)
    boot: Mapped[str | None] = mapped_column(String(64))
    model_name: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[int | None] = mapped_column(Integer)
    inferences: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[int] = mapped_column(Integer, default=0)
    error_rate: Mapped[float | None] = mapped_column(Float)
    latency_p50: Mapped[float | None] = mapped_column(Float)
    latency_p95: Mapped[float | None] = mapped_column(Float)
    throughput: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)
    drift: Mapped[float | None] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)


class TelemetryMinute(Base):
    """Per-device, per-model-version minute aggregates (kept longer than raw rows)."""

    __tablename__ = "telemetry_minute"
    __table_args__ = (
        UniqueConstraint(
            "device_id", "minute", "model_name", "model_version", name="uq_telemetry_minute"
        ),
        Index("ix_telemetry_minute_model", "model_name", "model_version", "minute"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128))
    minute: Mapped[int] = mapped_column(Integer, index=True)  # unix seconds of minute start
    model_name: Mapped[str] = mapped_column(String(64), default="")
    model_version: Mapped[int] = mapped_column(Integer, default=0)
    samples: Mapped[int] = mapped_column(Integer)
    inferences: Mapped[int] = mapped_column(Integer)
    errors: Mapped[int] = mapped_column(Integer)
    latency_p50: Mapped[float | None] = mapped_column(Float)
    latency_p95: Mapped[float | None] = mapped_column(Float)  # max over the minute
    throughput: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float | None] = mapped_column(Float)
    drift: Mapped[float | None] = mapped_column(Float)
    accuracy: Mapped[float | None] = mapped_column(Float)


class DriftFeature(Base):
    """What a device reports drifting while its drift alert lasts: a feature or channel by
    name, or the ``mean`` / ``output`` / ``confidence`` signal (name = kind). ``first_seen``
    is the device time of the first telemetry that had it over its threshold (since when),
    ``last_seen`` of the latest; every row of a device goes when its alert clears."""

    __tablename__ = "drift_features"
    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    psi: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    model_name: Mapped[str | None] = mapped_column(String(64))
    model_version: Mapped[int | None] = mapped_column(Integer)


class FleetCounter(Base):
    """A cumulative counter of the fleet, shared by every hub process (``/metrics`` reads
    these; see cloud/hub/ingest/fleet_counters.py): ``family`` names it, ``model_name`` /
    ``model_version`` ("" / 0 when none) and ``label`` (a bucket bound, a result) say which
    series. Only ever incremented, in the transaction that stored what it counts."""

    __tablename__ = "fleet_counters"
    family: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_device_ts", "device_id", "ts"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128))
    ts: Mapped[float] = mapped_column(Float)
    seq: Mapped[int] = mapped_column(Integer)
    boot: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    step: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    rollout: Mapped[str | None] = mapped_column(String(32), index=True)
    command: Mapped[str | None] = mapped_column(String(96))
    version: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)


class Lease(Base):
    """A named lease in the database: one MQTT consumer among several hub workers."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires: Mapped[float] = mapped_column(Float)


class SampleRecord(Base):
    """A sample a device captured and uploaded (cloud/hub/samples/): its input lives in a
    file under ``<data dir>/samples/<device>/<id>.<png|npy|json>``; the row holds what the
    model made of it and the operator's label (``label``; every change also goes to
    ``sample_labels``)."""

    __tablename__ = "samples"
    __table_args__ = (
        Index("ix_samples_device_received", "device_id", "received_at"),
        Index("ix_samples_model", "model_name", "model_version"),
        Index("ix_samples_received", "received_at"),
        Index("ix_samples_label", "label"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True)  # uuid4 hex, device-chosen
    device_id: Mapped[str] = mapped_column(String(128))
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(32))
    predicted: Mapped[str] = mapped_column(String(256))
    predicted_index: Mapped[int | None] = mapped_column(Integer)
    confidence: Mapped[float | None] = mapped_column(Float)
    scores: Mapped[list[Any] | None] = mapped_column(JSON)
    known_label: Mapped[str | None] = mapped_column(String(256))
    shadow: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {version, label}
    kind: Mapped[str] = mapped_column(String(16))  # image | tabular | array
    media_type: Mapped[str] = mapped_column(String(64))
    features: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # tabular rows only
    array: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # arrays: {dtype, shape}
    size: Mapped[int] = mapped_column(Integer)  # bytes of the stored file
    sha256: Mapped[str] = mapped_column(String(64))  # of the stored file
    captured_at: Mapped[float] = mapped_column(Float)  # device clock
    received_at: Mapped[float] = mapped_column(Float)  # hub clock
    label: Mapped[str | None] = mapped_column(String(256))
    labeled_by: Mapped[str | None] = mapped_column(String(128))
    labeled_at: Mapped[float | None] = mapped_column(Float)


class SampleLabel(Base):
    """Every label change of a sample, in order (who, when, from what to what)."""

    __tablename__ = "sample_labels"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[str] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"), index=True)
    label: Mapped[str | None] = mapped_column(String(256))  # None: the label was cleared
    previous: Mapped[str | None] = mapped_column(String(256))
    by: Mapped[str | None] = mapped_column(String(128))
    at: Mapped[float] = mapped_column(Float)


class DatasetVersion(Base):
    """A frozen version of a field dataset (cloud/hub/datasets/): the labeled samples one
    filter matched, each with the label it had then and a copy of its input file under
    ``<data dir>/datasets/<name>/<version>/``, so relabeling, deleting or expiring a sample
    later never changes it. ``fingerprint`` is sha256 over the sorted (id, label, file
    sha256) lines; ``counts`` holds ``total``, ``by_device`` and ``by_label``."""

    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("name", "version", name="uq_dataset_versions_name_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    fingerprint: Mapped[str] = mapped_column(String(80))
    filter: Mapped[dict[str, Any]] = mapped_column(JSON)
    kind: Mapped[str] = mapped_column(String(16))  # image | tabular | array
    model_name: Mapped[str | None] = mapped_column(String(64))
    labels: Mapped[list[Any]] = mapped_column(JSON)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(128))


class DatasetSample(Base):
    """One sample of a dataset version, as it was frozen (no foreign key to ``samples``:
    the version outlives the sample row)."""

    __tablename__ = "dataset_samples"
    dataset_id: Mapped[int] = mapped_column(
        ForeignKey("dataset_versions.id", ondelete="CASCADE"), primary_key=True
    )
    sample_id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    device_id: Mapped[str] = mapped_column(String(128))
    label: Mapped[str] = mapped_column(String(256))
    sha256: Mapped[str] = mapped_column(String(64))
    file: Mapped[str] = mapped_column(String(512))  # relative to the data dir
    features: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # tabular rows only
    captured_at: Mapped[float] = mapped_column(Float)


class ModelComparison(Base):
    """A champion check (cloud/hub/champion/): a candidate version against the version the
    fleet (at upload) or a rollout's target devices (at rollout creation) run. ``rollout_id``
    is None for upload checks and for rollouts refused before they existed; ``forced``: an
    operator created the rollout over a ``worse`` decision."""

    __tablename__ = "model_comparisons"
    __table_args__ = (Index("ix_model_comparisons_model", "model_name", "candidate_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_name: Mapped[str] = mapped_column(String(64))
    candidate_version: Mapped[int] = mapped_column(Integer)
    champion_version: Mapped[int | None] = mapped_column(Integer)
    context: Mapped[str] = mapped_column(String(16))  # upload | rollout | manual
    rollout_id: Mapped[str | None] = mapped_column(String(32), index=True)
    decision: Mapped[str] = mapped_column(String(16))  # worse | better | similar | unknown
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[float] = mapped_column(Float)
    actor: Mapped[str | None] = mapped_column(String(128))
