"""Dataset versions (``/api/v1/datasets``): freeze labeled field samples into a version,
list and show versions, download a version's export. Shapes: docs/hub-api.md, "Datasets"."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, send_file
from sqlalchemy import func, select

from cloud.errors import ApiError
from cloud.hub.context import db, hub
from cloud.hub.datasets import build_archive, check_name, freeze
from cloud.hub.http.auth import require
from cloud.hub.http.common import actor, json_body
from cloud.hub.samples import SampleFilter
from cloud.hub.storage import DatasetVersion

bp = Blueprint("datasets", __name__)
MAX_VERSION = 2**31 - 1


def version_json(dv: DatasetVersion) -> dict[str, Any]:
    return {
        "name": dv.name,
        "version": dv.version,
        "fingerprint": dv.fingerprint,
        "filter": dv.filter,
        "kind": dv.kind,
        "model": dv.model_name,
        "labels": dv.labels,
        "counts": dv.counts,
        "created": dv.created,
        "created_by": dv.created_by,
        "archive_url": f"/api/v1/datasets/{dv.name}/{dv.version}/archive",
    }


def _get(name: str, version: str) -> DatasetVersion:
    q = select(DatasetVersion).where(DatasetVersion.name == name)
    if version == "latest":
        row = db().scalar(q.order_by(DatasetVersion.version.desc()).limit(1))
    else:
        try:
            number = int(version)
        except ValueError:
            number = 0
        if not 1 <= number <= MAX_VERSION:
            raise ApiError(400, "invalid", "a dataset version is a number (1 or more) or 'latest'")
        row = db().scalar(q.where(DatasetVersion.version == number))
    if row is None:
        raise ApiError(404, "not_found", f"dataset {name}@{version} does not exist")
    return row


@bp.post("/datasets")
@require("operator")
def create_dataset() -> Any:
    body = json_body()
    unknown = sorted(set(body) - {"name", "filter"})
    if unknown:
        raise ApiError(400, "invalid", f"unknown field(s) {', '.join(unknown)}: use name, filter")
    name = check_name(body.get("name"))
    raw = body.get("filter")
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise ApiError(400, "invalid", "'filter' must be an object of sample filters")
    dv = freeze(db(), hub().config, name, SampleFilter.from_args(raw), actor())
    db().commit()
    return jsonify(version_json(dv)), 201


@bp.get("/datasets")
@require("viewer")
def list_datasets() -> Any:
    latest = (
        select(DatasetVersion.name, func.max(DatasetVersion.version), func.count())
        .group_by(DatasetVersion.name)
        .order_by(DatasetVersion.name)
    )
    out = []
    for name, version, n in db().execute(latest).all():
        dv = _get(name, str(version))
        out.append({**version_json(dv), "versions": int(n)})
    return jsonify(out)


@bp.get("/datasets/<name>")
@require("viewer")
def show_dataset(name: str) -> Any:
    rows = (
        db()
        .scalars(
            select(DatasetVersion)
            .where(DatasetVersion.name == name)
            .order_by(DatasetVersion.version)
        )
        .all()
    )
    if not rows:
        raise ApiError(404, "not_found", f"dataset {name!r} does not exist")
    return jsonify({"name": name, "versions": [version_json(r) for r in rows]})


@bp.get("/datasets/<name>/<version>")
@require("viewer")
def show_version(name: str, version: str) -> Any:
    return jsonify(version_json(_get(name, version)))


@bp.get("/datasets/<name>/<version>/archive")
@require("viewer")
def download_archive(name: str, version: str) -> Any:
    dv = _get(name, version)
    path = build_archive(db(), hub().config, dv)
    return send_file(
        path,
        mimetype="application/zip",
        as_attachment=True,
        download_name=f"{dv.name}-{dv.version}.zip",
        etag=dv.fingerprint.removeprefix("sha256:"),
        max_age=0,
    )
