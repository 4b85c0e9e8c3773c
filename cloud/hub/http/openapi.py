"""The OpenAPI 3.1 document of ``/api/v1``, built from one table of routes.

Shapes are described loosely (``object``) except for request bodies that clients must
get right; docs/hub-api.md has the full field lists.
"""

from __future__ import annotations

from typing import Any

from cloud.hub.rollout import DEPLOYMENT_STATUSES, GATE_METRICS
from edge import __version__
from edge.contract import REASONS

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
ROLLOUT_BODY = {
    "type": "object",
    "required": ["model", "version", "target"],
    "properties": {
        "model": {"type": "string"},
        "version": {"type": "integer", "minimum": 1},
        "target": {
            "type": "object",
            "properties": {
                "tags": {"type": "array", "items": {"type": "string"}},
                "devices": {"type": "array", "items": {"type": "string"}},
                "all": {"type": "boolean"},
            },
        },
        "waves": {"type": "array", "items": {"oneOf": [{"type": "number"}, {"type": "object"}]}},
        "soak_seconds": {"type": "number", "minimum": 0},
        "success_threshold": {"type": "number", "minimum": 0, "maximum": 1},
        "error_threshold": {"type": "number", "minimum": 0, "maximum": 1},
        "error_action": {"enum": ["pause", "rollback"]},
        "gates": {
            "type": "object",
            "description": "metric -> tolerance against the previous version (a number, or an "
            "object as docs/hub-api.md describes), or null to switch the gate off",
            "properties": {
                m: {"oneOf": [{"type": "number"}, {"type": "object"}, {"type": "null"}]}
                for m in GATE_METRICS
            },
        },
        "gate_min_devices": {"type": "integer", "minimum": 1},
        "gate_min_inferences": {"type": "integer", "minimum": 0},
        "p95_latency_min_increase_ms": {"type": "number", "minimum": 0, "maximum": 1e6},
        "manual_approval": {"type": "boolean"},
        "deploy_timeout_s": {"type": "number"},
        "shadow": {
            "description": "run the candidate beside the served model on each device before "
            "activating it; a device agreeing less than min_agreement fails the wave's gate",
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["inputs"],
                    "properties": {
                        "inputs": {"type": "integer", "minimum": 1, "maximum": 100_000},
                        "min_agreement": {"type": "number", "minimum": 0, "maximum": 1},
                        "timeout": {"type": "number", "minimum": 1, "maximum": 86_400},
                    },
                },
            ],
        },
        "start": {"type": "boolean"},
        "force": {
            "type": "boolean",
            "description": "create it even when the champion check finds the version clearly "
            "worse than what the target devices run (409 'champion' otherwise); audited",
        },
    },
}
# One device's part in a rollout (``deployments[]`` of GET /rollouts/{id}). ``incompatible``:
# it can run none of the bundle's variants (its reported capabilities, or its agent's
# refusal); ``reason`` says why. Not a failure: it never counts against the error threshold.
DEPLOYMENT = {
    "type": "object",
    "properties": {
        "device": {"type": "string"},
        "wave": {"type": "integer"},
        "status": {"enum": list(DEPLOYMENT_STATUSES)},
        "reason": {"type": "string"},
        "command": {"type": ["string", "null"]},
        "attempts": {"type": "integer"},
        "updated": {"type": "number"},
        "from": {"type": ["object", "null"]},
        "shadow": {"type": ["object", "null"]},
    },
}
STRING = {"type": "string"}
TS = {"type": "number", "minimum": 0, "maximum": 1e10, "description": "unix seconds"}
# the sample filter (cloud/hub/samples/filters.py), as query parameters
SAMPLE_FILTER: dict[str, dict[str, Any]] = {
    "device": {"type": "string"}, "model": {"type": "string"},
    "version": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    "reason": {"enum": list(REASONS)}, "predicted": {"type": "string"},
    "label": {"type": "string"}, "labeled": {"enum": ["true", "false"]},
}  # fmt: skip
SAMPLE_LABELS_BODY = {
    "type": "object",
    "description": "either ids + label (null clears) or labels: {sample id: label or null}",
    "properties": {
        "ids": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 5000},
        "label": {"type": ["string", "null"], "maxLength": 128},
        "labels": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
    },
}
SAMPLE_IDS_BODY = {
    "type": "object", "required": ["ids"],
    "properties": {"ids": {"type": "array", "items": {"type": "string"}, "minItems": 1,
                           "maxItems": 5000}},
}  # fmt: skip
# the query parameters each route reads, with the limits it enforces (a value outside is 400)
QUERY: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("get", "/devices"): {
        "tag": {"type": "string"}, "model": {"type": "string"}, "version": {"type": "string"},
    },
    ("get", "/devices/{device}/telemetry"): {
        "resolution": {"enum": ["raw", "minute"], "default": "raw"},
        "since": TS, "until": TS,
        "limit": {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 2000},
    },
    ("get", "/devices/{device}/events"): {
        "since": TS, "limit": {"type": "integer", "minimum": 1, "maximum": 5000, "default": 200},
    },
    ("get", "/models/{name}/{version}/telemetry"): {"since": TS, "until": TS},
    ("get", "/drift"): {
        "name": {"type": "string", "minLength": 1, "maxLength": 128},
        "kind": {"enum": ["feature", "channel", "mean", "output", "confidence"]},
        "limit": {"type": "integer", "minimum": 1, "maximum": 10_000, "default": 1000},
    },
    ("get", "/rollouts"): {"state": {"type": "string"}},
    ("get", "/samples"): {
        **SAMPLE_FILTER,
        "limit": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
        "offset": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1, "default": 0},
    },
    ("get", "/samples/summary"): SAMPLE_FILTER,
    ("get", "/samples/{id}/input"): {"as": {"enum": ["png"]}},
}  # fmt: skip
PATH_PARAMS: dict[str, dict[str, Any]] = {
    "id": {"type": "string"},
    "token_id": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1},
    "version": {"type": "string", "description": "a version number or an alias"},
}
TOKEN_BODY = {
    "type": "object", "required": ["role"],
    "properties": {"role": {"enum": ["viewer", "operator", "admin"]},
                   "name": {"type": "string", "maxLength": 128}},
}  # fmt: skip
PASSWORD_BODY = {
    "type": "object", "required": ["password"],
    "properties": {"password": {"type": "string", "minLength": 8, "maxLength": 1024},
                   "current_password": {"type": "string"}},
}  # fmt: skip
# (method, path, summary, role, success status, request body schema or marker)
ROUTES: list[tuple[str, str, str, str | None, int, Any]] = [
    ("get", "/devices", "List devices (as they report themselves)", "viewer", 200, None),
    ("get", "/devices/{device}", "One device with capabilities and what drifts", "viewer", 200,
     None),
    ("get", "/drift", "Drifting features of the fleet: which feature, since when, which device",
     "viewer", 200, None),
    ("patch", "/devices/{device}", "Edit a device's tags", "operator", 200,
     {"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}}}),
    ("get", "/devices/{device}/telemetry", "Telemetry (raw or minute)", "viewer", 200, None),
    ("get", "/devices/{device}/events", "Events, newest first", "viewer", 200, None),
    ("post", "/devices/{device}/revoke", "Revoke a device's token and broker account", "admin",
     200, None),
    ("put", "/devices/{device}/capture",
     "Set a device's capture policy (keys of the agent's 'capture'; a signed config command)",
     "operator", 200, {"type": "object", "minProperties": 1, "properties": {
         **{k: {"type": "boolean"} for k in ("enabled", "out_of_range", "drift",
                                             "shadow_disagreement", "wrong_label")},
         "low_confidence": {"type": "number", "minimum": 0, "maximum": 1},
         "random": {"type": "number", "minimum": 0, "maximum": 1},
         "next": {"type": "integer", "minimum": 0, "maximum": 10_000},
         "max_mb": {"type": "number", "minimum": 1, "maximum": 1024},
         "max_per_minute": {"type": "integer", "minimum": 1, "maximum": 600},
         "upload_batch": {"type": "integer", "minimum": 1, "maximum": 64},
         "upload_interval": {"type": "number", "minimum": 1, "maximum": 86_400}},
      "additionalProperties": False}),
    ("post", "/enroll", "Exchange an enrollment token for device credentials", None, 200,
     {"type": "object", "required": ["token", "device"],
      "properties": {"token": {"type": "string"}, "device": {"type": "string"}}}),
    ("get", "/models", "List model versions", "viewer", 200, None),
    ("post", "/models", "Upload a signed bundle (multipart field 'bundle')", "operator", 201,
     "multipart"),
    ("get", "/models/{name}/{version}", "Manifest, model card and variant table", "viewer", 200,
     None),
    ("delete", "/models/{name}/{version}", "Delete an unused version", "admin", 204, None),
    ("get", "/models/{name}/{version}/bundle", "Download the bundle (Range supported)",
     "viewer or device", 200, None),
    ("get", "/models/{name}/{version}/telemetry", "Per-minute telemetry over devices",
     "viewer", 200, None),
    ("get", "/models/{name}/aliases", "Aliases of a model", "viewer", 200, None),
    ("put", "/models/{name}/aliases/{alias}", "Point stable/candidate at a version",
     "operator", 200, {"type": "object", "required": ["version"],
                       "properties": {"version": {"type": "integer"}}}),
    ("post", "/rollouts", "Create (and start) a rollout", "operator", 201, ROLLOUT_BODY),
    ("get", "/rollouts", "List rollouts", "viewer", 200, None),
    ("get", "/rollouts/{id}", "Rollout with waves, gates and audit log", "viewer", 200, None),
    *[
        ("post", f"/rollouts/{{id}}/{a}", f"{a.capitalize()} a rollout", "operator", 200, None)
        for a in ("pause", "resume", "abort", "rollback", "retry", "approve")
    ],
    ("get", "/models/{name}/{version}/comparison",
     "The version's newest champion check (decision, field accuracy with intervals, per "
     "class, agreement, test metrics)", "viewer", 200, None),
    ("post", "/models/{name}/{version}/comparison",
     "Run the champion check again now, against the version the fleet runs", "operator", 201,
     None),
    ("post", "/datasets", "Freeze the labeled samples a filter matches into a new version",
     "operator", 201, {"type": "object", "required": ["name"], "properties": {
         "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
         "filter": {"type": "object", "properties": SAMPLE_FILTER,
                    "additionalProperties": False}}, "additionalProperties": False}),
    ("get", "/datasets", "Datasets with their newest version", "viewer", 200, None),
    ("get", "/datasets/{name}", "A dataset's versions", "viewer", 200, None),
    ("get", "/datasets/{name}/{version}", "One dataset version (a number or 'latest')",
     "viewer", 200, None),
    ("get", "/datasets/{name}/{version}/archive",
     "The version as a zip of the folder `edgekit train` reads, with edgekit-dataset.json",
     "viewer", 200, None),
    ("post", "/devices/{device}/samples",
     "Upload captured samples (docs/schemas/samples.schema.json); idempotent by sample id",
     "the device itself (device token)", 200, {"type": "object"}),
    ("get", "/samples", "Captured samples, filtered, oldest first, with the total", "viewer",
     200, None),
    ("get", "/samples/summary", "Sample counts: labeled, by device, reason, class", "viewer",
     200, None),
    ("get", "/samples/{id}", "One sample with its label history", "viewer", 200, None),
    ("get", "/samples/{id}/input", "The sample's input (PNG, .npy or the JSON row)", "viewer",
     200, None),
    ("post", "/samples/labels", "Label or relabel samples (history kept)", "operator", 200,
     SAMPLE_LABELS_BODY),
    ("delete", "/samples/{id}", "Delete a sample and its file", "operator", 204, None),
    ("post", "/samples/delete", "Delete samples and their files", "operator", 200,
     SAMPLE_IDS_BODY),
    ("get", "/session", "Who is logged in, plus a CSRF token", None, 200, None),
    ("post", "/session", "Log in (browser session)", None, 200,
     {"type": "object", "properties": {"username": {"type": "string"},
                                       "password": {"type": "string"}}}),
    ("delete", "/session", "Log out", None, 204, None),
    ("get", "/openapi.json", "This document", None, 200, None),
    ("get", "/tokens", "API tokens (never their secrets)", "admin", 200, None),
    ("post", "/tokens", "Create an API token (its secret is shown once)", "admin", 201,
     TOKEN_BODY),
    ("post", "/tokens/{token_id}/revoke", "Revoke an API token", "admin", 200, None),
    ("put", "/users/{username}/password", "Set a password (ends the user's sessions)",
     "admin, or the user with current_password", 200, PASSWORD_BODY),
]  # fmt: skip


def _parameters(method: str, path: str) -> list[dict[str, Any]]:
    names = [part.strip("{}") for part in path.split("/") if part.startswith("{")]
    params = [
        {"name": n, "in": "path", "required": True, "schema": PATH_PARAMS.get(n, STRING)}
        for n in names
    ]
    for name, schema in QUERY.get((method, path), {}).items():
        params.append({"name": name, "in": "query", "required": False, "schema": schema})
    return params


def _operation(
    method: str, summary: str, role: str | None, status: int, body: Any, path: str
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            str(status): {"description": "success"},
            "4XX": {
                "description": "bad input, auth or state",
                "content": {"application/json": {"schema": ERROR}},
            },
        },
    }
    if role is not None:
        op["security"] = [{"bearer": []}, {"session": []}]
        op["description"] = f"Needs role: {role}."
    params = _parameters(method, path)
    if params:
        op["parameters"] = params
    if body == "multipart":
        op["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {"bundle": {"type": "string", "format": "binary"}},
                        "required": ["bundle"],
                    }
                }
            },
        }
    elif body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, role, status, body in ROUTES:
        paths.setdefault(path, {})[method] = _operation(method, summary, role, status, body, path)
    return {
        "openapi": "3.1.0",
        "info": {"title": "edgekit hub API", "version": __version__},
        "servers": [{"url": "/api/v1"}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "session"},
            },
            "schemas": {
                "Error": ERROR,
                "RolloutRequest": ROLLOUT_BODY,
                "RolloutDeployment": DEPLOYMENT,
            },
        },
    }
