"""Routes for models and aliases (under ``/api/v1``). Shapes: docs/hub-api.md."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, jsonify, request, send_file
from sqlalchemy import and_, or_, select

from cloud.errors import ApiError
from cloud.hub import champion
from cloud.hub.context import db, hub
from cloud.hub.http.auth import current_principal, require
from cloud.hub.http.common import actor, json_body
from cloud.hub.http.openapi import document
from cloud.hub.http.shapes import model_detail_json, model_json
from cloud.hub.registry import bundle_path, delete_version, deletion_blockers, store_upload
from cloud.hub.storage import Alias, Deployment, ModelVersion, Rollout

log = logging.getLogger(__name__)
bp = Blueprint("models", __name__)
ALIAS_NAMES = ("stable", "candidate")
MAX_VERSION = 2**31 - 1
# offload bundle bytes to the reverse proxy (see download_bundle)
ACCEL_REDIRECT_ENV = "EDGEKIT_HUB_BUNDLE_ACCEL_REDIRECT"
SENDFILE_ENV = "EDGEKIT_HUB_BUNDLE_SENDFILE"


def get_model(name: str, version: str | int) -> ModelVersion:
    """A version by number or alias; numbers the database cannot hold are simply unknown."""
    try:
        number = int(version)
    except ValueError:
        number = -1
    if number > MAX_VERSION:
        row = None
    elif number < 1:
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


@bp.get("/models")
@require("viewer")
def list_models() -> Any:
    rows = db().scalars(select(ModelVersion).order_by(ModelVersion.name, ModelVersion.version))
    aliases: dict[str, dict[int, list[str]]] = {}
    checks = champion.decisions(db())
    out = []
    for m in rows:
        if m.name not in aliases:
            aliases[m.name] = _aliases(m.name)
        out.append({**model_json(m, aliases[m.name].get(m.version)),
                    "champion": checks.get((m.name, m.version))})  # fmt: skip
    return jsonify(out)


@bp.post("/models")
@require("operator")
def upload_model() -> Any:
    f = request.files.get("bundle")
    if f is None:
        raise ApiError(400, "missing_field", "send the bundle as multipart field 'bundle'")
    row = store_upload(db(), hub().config, f.stream, actor())
    db().commit()
    check = upload_check(row)
    return jsonify(
        {"name": row.name, "version": row.version, "sha256": row.sha256, "champion": check}
    ), 201


def upload_check(row: ModelVersion) -> dict[str, Any] | None:
    """The champion check of a new version, stored for the models page. The upload is
    committed already: a check that cannot run is logged and shown, never an upload error."""
    try:
        found = champion.record(db(), champion.check(db(), hub().config, row, None), "upload",
                                actor=actor())  # fmt: skip
        db().commit()
        return champion.comparison_json(found)
    except Exception:
        log.exception("champion check of %s v%s failed", row.name, row.version)
        db().rollback()
        return None


@bp.get("/models/<name>/<version>")
@require("viewer")
def show_model(name: str, version: str) -> Any:
    m = get_model(name, version)
    return jsonify(model_detail_json(m, _aliases(name).get(m.version)))


@bp.get("/models/<name>/<version>/bundle")
@require("viewer", allow_device=True)
def download_bundle(name: str, version: str) -> Any:
    """The bundle file, with its sha256 as a strong ETag: a client holding the file sends
    ``If-None-Match`` and gets a 304 (the simulator's shared cache, a caching proxy).
    With ``EDGEKIT_HUB_BUNDLE_ACCEL_REDIRECT=/prefix/`` (nginx) or
    ``EDGEKIT_HUB_BUNDLE_SENDFILE=1`` (Apache, lighttpd) the hub checks access and the
    proxy sends the bytes (docs/hub.md "Serving bundles from the proxy")."""
    m = get_model(name, version)
    principal = current_principal(db())
    if principal is not None and principal.device_id is not None:
        _check_deployed(principal.device_id, m)
    path = bundle_path(hub().config, m)
    if not path.is_file():
        raise ApiError(410, "gone", f"the bundle file of {name} v{m.version} is missing")
    accel = os.environ.get(ACCEL_REDIRECT_ENV, "").strip()
    sendfile = os.environ.get(SENDFILE_ENV, "").strip().lower() in ("1", "true", "yes")
    if accel or sendfile:
        resp = _offloaded(m, path, accel)
    else:
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


def _offloaded(m: ModelVersion, path: Path, accel_prefix: str) -> Response:
    """An empty answer naming the file for the proxy to send; a matching ``If-None-Match``
    is answered 304 here, so revalidation never reaches the proxy's file path."""
    resp = Response(status=200, mimetype="application/octet-stream")
    resp.set_etag(m.sha256)
    resp.headers["Cache-Control"] = "no-cache"
    if m.sha256 in request.if_none_match:
        resp.status_code = 304
        return resp
    resp.headers["Content-Disposition"] = f'attachment; filename="{m.name}-{m.version}.ekb"'
    if accel_prefix:
        rel = path.relative_to(hub().config.bundle_dir).as_posix()
        resp.headers["X-Accel-Redirect"] = accel_prefix.rstrip("/") + "/" + quote(rel)
    else:
        resp.headers["X-Sendfile"] = str(path)
    return resp


def _check_deployed(device_id: str, m: ModelVersion) -> None:
    """A device token fetches only what a rollout sent that device: the rollout's version,
    or the version the device ran before it (what a rollback order points at)."""
    ordered = db().scalar(
        select(Deployment.rollout_id)
        .join(Rollout, Rollout.id == Deployment.rollout_id)
        .where(
            Deployment.device_id == device_id,
            or_(
                and_(Rollout.model_name == m.name, Rollout.model_version == m.version),
                and_(Deployment.from_name == m.name, Deployment.from_version == m.version),
            ),
        )
        .limit(1)
    )
    if ordered is None:
        raise ApiError(
            403, "forbidden", f"{m.name} v{m.version} was never deployed to device {device_id}"
        )


@bp.delete("/models/<name>/<version>")
@require("admin")
def delete_model(name: str, version: str) -> Any:
    m = get_model(name, version)
    blockers = deletion_blockers(db(), m)
    if blockers:
        raise ApiError(409, "in_use", f"cannot delete {name} v{m.version}: " + "; ".join(blockers))
    delete_version(db(), hub().config, m)
    db().commit()
    return "", 204


@bp.get("/models/<name>/aliases")
@require("viewer")
def get_aliases(name: str) -> Any:
    rows = db().scalars(select(Alias).where(Alias.name == name).order_by(Alias.alias))
    return jsonify({a.alias: a.version for a in rows})


@bp.put("/models/<name>/aliases/<alias>")
@require("operator")
def put_alias(name: str, alias: str) -> Any:
    import time

    if alias not in ALIAS_NAMES:
        raise ApiError(400, "bad_alias", f"alias must be one of {', '.join(ALIAS_NAMES)}")
    version = json_body().get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MAX_VERSION:
        raise ApiError(400, "invalid", f"'version' must be an integer from 1 to {MAX_VERSION}")
    get_model(name, version)
    row = db().get(Alias, (name, alias))
    if row is None:
        db().add(Alias(name=name, alias=alias, version=version, updated=time.time()))
    else:
        row.version, row.updated = version, time.time()
    db().commit()
    return jsonify({"name": name, "alias": alias, "version": version})


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(document())
