"""Captured samples: the device upload (device token, idempotent, rate-limited) and the
operator API the labeling page uses (list, filter, label, delete, summary, input file).
The store itself is cloud/hub/samples/; these routes only translate."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request, send_file

from cloud.errors import ApiError
from cloud.hub.context import db, hub
from cloud.hub.http.auth import current_principal, require
from cloud.hub.http.common import actor, json_body
from cloud.hub.samples import (
    MEDIA_TYPES,
    RateLimited,
    SampleFilter,
    check_ids,
    count_samples,
    delete_samples,
    get_sample,
    label_history,
    query_samples,
    sample_file,
    set_labels,
    store_batch,
    summary,
)
from cloud.hub.samples.preview import array_png
from edge.contract import MAX_BATCH, MAX_BATCH_BYTES, SampleBatch, decode_json

bp = Blueprint("samples", __name__)
log = logging.getLogger(__name__)
MAX_PAGE = 1000


def _filter() -> SampleFilter:
    """The request's sample filter; an unknown query key is a 400 naming it."""
    return SampleFilter.from_args(
        {k: v for k, v in request.args.items() if k not in ("limit", "offset")}
    )


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "invalid", f"'{name}' must be an integer") from None
    if not lo <= value <= hi:
        raise ApiError(400, "invalid", f"'{name}' must be between {lo} and {hi}")
    return value


def _samples_dir() -> Any:
    return hub().config.samples_dir


@bp.post("/devices/<device_id>/samples")
def upload_samples(device_id: str) -> Any:
    """A device's batch of captured samples (edge/contract/samples.py), answered with the
    ids stored, already stored (re-sent: fine) and refused, each with why."""
    s = db()
    principal = current_principal(s)
    s.commit()  # end the auth transaction before the (large) body is read
    if principal is None:
        raise ApiError(401, "unauthorized", "send 'Authorization: Bearer <device token>'")
    if principal.kind != "device":
        raise ApiError(403, "forbidden", "only the device itself uploads its samples")
    if principal.device_id != device_id:
        raise ApiError(403, "forbidden", "a device token may only upload its own samples")
    raw = request.get_data(cache=False)
    if request.content_length is None and len(raw) >= MAX_BATCH_BYTES:
        raise ApiError(413, "too_large", f"an upload is limited to {MAX_BATCH_BYTES} bytes")
    doc = decode_json(raw, limit=MAX_BATCH_BYTES)
    items = doc.get("samples")
    if isinstance(items, list) and len(items) > MAX_BATCH:
        raise ApiError(413, "too_large", f"an upload holds at most {MAX_BATCH} samples")
    batch, bad = SampleBatch.parse_lenient(doc)
    if batch.device != device_id:
        raise ApiError(400, "invalid", f"the document is for {batch.device!r}, not {device_id!r}")
    cfg = hub().config
    try:
        receipt = store_batch(
            s,
            cfg.samples_dir,
            batch,
            [(r["id"], r["error"]) for r in bad],
            rate_per_minute=cfg.sample_rate_per_minute,
        )
    except RateLimited as exc:
        resp = jsonify({"error": {"code": exc.code, "message": exc.message}})
        resp.headers["Retry-After"] = str(exc.retry_after)
        return resp, 429
    if receipt.accepted or receipt.rejected:
        log.info("samples from %s: %d stored, %d duplicates, %d refused", device_id,
                 len(receipt.accepted), len(receipt.duplicates), len(receipt.rejected))  # fmt: skip
    return jsonify(receipt.to_dict())


@bp.get("/samples")
@require("viewer")
def list_samples() -> Any:
    filters = _filter()
    limit = _int_arg("limit", 100, 1, MAX_PAGE)
    offset = _int_arg("offset", 0, 0, 2**31 - 1)
    rows = query_samples(db(), filters, limit=limit, offset=offset)
    return jsonify(
        {
            "samples": [r.to_dict() for r in rows],
            "total": count_samples(db(), filters),
            "limit": limit,
            "offset": offset,
        }
    )


@bp.get("/samples/summary")
@require("viewer")
def samples_summary() -> Any:
    return jsonify(summary(db(), _filter()))


@bp.get("/samples/<sample_id>")
@require("viewer")
def show_sample(sample_id: str) -> Any:
    row = get_sample(db(), sample_id)
    return jsonify({**row.to_dict(), "history": label_history(db(), row.id)})


@bp.get("/samples/<sample_id>/input")
@require("viewer")
def sample_input(sample_id: str) -> Any:
    """The stored input: the PNG, the ``.npy`` (``?as=png``: a PNG preview of an image-like
    array) or the tabular row as JSON."""
    row = get_sample(db(), sample_id)
    path = sample_file(hub().config.data_dir, row)
    if not path.is_file():
        raise ApiError(404, "not_found", f"the input file of sample {row.id} is missing")
    as_ = request.args.get("as")
    if as_ not in (None, "", "png"):
        raise ApiError(400, "invalid", "'as' may only be png")
    headers = {"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"}
    if as_ == "png" and row.kind != "image":
        png = array_png(path.read_bytes()) if row.kind == "array" else None
        if png is None:
            raise ApiError(400, "invalid", f"sample {row.id} ({row.kind}) has no image preview")
        return Response(png, mimetype="image/png", headers=headers)
    ext = path.suffix.lstrip(".")
    resp = send_file(
        path,
        mimetype=MEDIA_TYPES[ext],
        as_attachment=ext == "npy",
        download_name=f"{row.id}.{ext}",
        max_age=86400,
    )
    resp.headers.update(headers)
    return resp


@bp.post("/samples/labels")
@require("operator")
def label_samples() -> Any:
    """``{"ids": [...], "label": "7"}`` (one label for many) or ``{"labels": {id: label}}``;
    a null label clears it. Every change is kept in the sample's history."""
    body = json_body()
    if ("labels" in body) == ("ids" in body):
        raise ApiError(400, "invalid", "send either 'ids' with 'label', or 'labels'")
    if "labels" in body:
        labels = body["labels"]
        if not isinstance(labels, dict):
            raise ApiError(400, "invalid", "'labels' must map sample ids to labels")
    else:
        if "label" not in body:
            raise ApiError(400, "invalid", "'ids' needs 'label' (a class name, or null)")
        labels = dict.fromkeys(check_ids(body["ids"]), body["label"])
    result = set_labels(db(), labels, actor())
    return jsonify(result.to_dict())


@bp.delete("/samples/<sample_id>")
@require("operator")
def delete_sample(sample_id: str) -> Any:
    row = get_sample(db(), sample_id)
    delete_samples(db(), _samples_dir(), [row.id])
    log.info("sample %s deleted by %s", row.id, actor())
    return "", 204


@bp.post("/samples/delete")
@require("operator")
def delete_many() -> Any:
    body = json_body()
    deleted, missing = delete_samples(db(), _samples_dir(), check_ids(body.get("ids")))
    log.info("%d samples deleted by %s", len(deleted), actor())
    return jsonify({"deleted": deleted, "missing": missing})
