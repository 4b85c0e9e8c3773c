"""The hub database: engine and sessions, the tables, Alembic migrations, bulk SQL and leases."""

from cloud.hub.storage.db import Database
from cloud.hub.storage.tables import (
    ROLES,
    Alias,
    ApiToken,
    AuditEntry,
    Deployment,
    Device,
    EnrollmentToken,
    EventRow,
    HubSecret,
    LoginFailure,
    ModelVersion,
    Rollout,
    RolloutWave,
    TelemetryMinute,
    TelemetryRaw,
    User,
    WebSession,
)

__all__ = [
    "ROLES",
    "Alias",
    "ApiToken",
    "AuditEntry",
    "Database",
    "Deployment",
    "Device",
    "EnrollmentToken",
    "EventRow",
    "HubSecret",
    "LoginFailure",
    "ModelVersion",
    "Rollout",
    "RolloutWave",
    "TelemetryMinute",
    "TelemetryRaw",
    "User",
    "WebSession",
]
