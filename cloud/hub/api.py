"""The REST API blueprint (``/api/v1``): models and aliases here; devices, enrollment and
telemetry in api_devices.py; rollouts in api_rollouts.py. Shapes: docs/hub-api.md."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request, send_file
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.hub.app import hub
from cloud.hub.auth import current_principal, require
from cloud.hub.http_errors import ApiError
from cloud.hub.models import Alias, ModelVersion
from cloud.hub.registry import bundle_path, delete_version, deletion_blockers, store_upload
from cloud.hub.views import model_detail_json, model_json

api = Blueprint("api", __name__, url_prefix="/api/v1")
ALIAS_NAMES = ("stable", "candidate")


def db() -> Session:
    return hub().request_session()


def json_body() -> dict[str, Any]:
    """The request's JSON object, or a 400 that says what is wrong."""
    data = request.get_json(silent=True)
    if data is None:
        raise ApiError(400, "bad_json", "send a JSON object with Content-Type: application/json")
    if not isinstance(data, dict):
        raise ApiError(400, "bad_json", "the body must be a JSON object")
    return data


def actor() -> str | None:
    p = current_principal(db())
    return p.name if p else None


def get_model(name: str, version: str | int) -> ModelVersion:
    try:
        number = int(version)
    except ValueError:
        number = -1
    if number < 1:
        row = _by_alias(name, str(version))
    else:
        row = db().scalar(
            select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == number)
        )
    if row is None:
        raise ApiError(404, "not_found", f"model {name} v{version} is not registered")
    return row


def _by_alias(name: str, alias: str) -> ModelVersion | None:
    a = db().get(Alias, (name, alias))
    if a is None:
        return None
    return db().scalar(
        select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == a.version)
    )


def _aliases(name: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for a in db().scalars(select(Alias).where(Alias.name == name)):
        out.setdefault(a.version, []).append(a.alias)
    return out


@api.get("/models")
@require("viewer")
def list_models() -> Any:
    rows = db().scalars(select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version))
    aliases: dict[str, dict[int, list[str]]] = {}
    out = []
    for m in rows:
        if m.name not in aliases:
            aliases[m.name] = _aliases(m.name)
        out.append(model_json(m, aliases[m.name].get(m.version)))
    return jsonify(out)


@api.post("/models")
@require("operator")
def upload_model() -> Any:
    f = request.files.get("bundle")
    if f is None:
        raise ApiError(400, "missing_field", "send the bundle as multipart field 'bundle'")
    row = store_upload(db(), hub().config, f.stream, actor())
    db().commit()
    return jsonify({"name": row.name, "version": row.version, "sha256": row.sha256}), 201


@api.get("/models/<name>/<version>")
@require("viewer")
def show_model(name: str, version: str) -> Any:
    m = get_model(name, version)
    return jsonify(model_detail_json(m, _aliases(name).get(m.version)))


@api.get("/models/<name>/<version>/bundle")
@require("viewer", allow_device=True)
def download_bundle(name: str, version: str) -> Any:
    m = get_model(name, version)
    path = bundle_path(hub().config, m)
    if not path.is_file():
        raise ApiError(410, "gone", f"the bundle file of {name} v{m.version} is missing")
    resp = send_file(
        path,
        mimetype="application/octet-stream",
        as_attachment=True,
        download_name=f"{m.name}-{m.version}.ekb",
        conditional=True,
        etag=m.sha256,
        max_age=0,
    )
    resp.headers["X-Edgekit-Sha256"] = m.sha256
    return resp


@api.delete("/models/<name>/<version>")
@require("admin")
def delete_model(name: str, version: str) -> Any:
    m = get_model(name, version)
    blockers = deletion_blockers(db(), m)
    if blockers:
        raise ApiError(409, "in_use", f"cannot delete {name} v{m.version}: " + "; ".join(blockers))
    delete_version(db(), hub().config, m)
    db().commit()
    return "", 204


@api.get("/models/<name>/aliases")
@require("viewer")
def get_aliases(name: str) -> Any:
    rows = db().scalars(select(Alias).where(Alias.name == name).order_by(Alias.alias))
    return jsonify({a.alias: a.version for a in rows})


@api.put("/models/<name>/aliases/<alias>")
@require("operator")
def put_alias(name: str, alias: str) -> Any:
    import time

    if alias not in ALIAS_NAMES:
        raise ApiError(400, "bad_alias", f"alias must be one of {', '.join(ALIAS_NAMES)}")
    version = json_body().get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ApiError(400, "invalid", "'version' must be an integer")
    get_model(name, version)
    row = db().get(Alias, (name, alias))
    if row is None:
        db().add(Alias(name=name, alias=alias, version=version, updated=time.time()))
    else:
        row.version, row.updated = version, time.time()
    db().commit()
    return jsonify({"name": name, "alias": alias, "version": version})


@api.get("/openapi.json")
def openapi() -> Any:
    from cloud.hub.openapi import document

    return jsonify(document())


# Route modules attach to ``api``; imported last because they import ``api`` from here.
from cloud.hub import api_devices, api_rollouts  # noqa: E402,F401
