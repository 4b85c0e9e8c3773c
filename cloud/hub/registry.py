"""The model registry's file side: verify an uploaded bundle, keep it, describe it.

Verification is edge/bundle/archive.py's ``verify_bundle`` (archive safety, every sha256, the
Ed25519 signature against the hub's trusted key) — the same code the agents run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tarfile
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.errors import ApiError
from cloud.hub.config import HubConfig
from cloud.hub.storage import Alias, Deployment, Device, ModelVersion, Rollout
from edge.bundle import verify_bundle
from edge.contract import Manifest
from edge.errors import BundleError

CARD_NAME = "model_card.md"
REPORT_NAME = "report.json"
MAX_SIDE_FILE = 4 * 1024 * 1024
CHUNK = 1 << 20


def check_bundle(path: Path, trusted_key: Path | None) -> Manifest:
    """The one place uploads are verified; a hub without a trusted key refuses uploads."""
    if trusted_key is None:
        raise ApiError(409, "no_trusted_key", "the hub has no trusted key (--trusted-key)")
    try:
        return verify_bundle(path, trusted_key)
    except BundleError as exc:
        raise ApiError(422, "bad_bundle", str(exc)) from exc


def _side_file(path: Path, name: str) -> bytes | None:
    """Read one small member of an already verified bundle."""
    with tarfile.open(path, "r:gz") as tar:
        try:
            member = tar.getmember(name)
        except KeyError:
            return None
        if not member.isfile() or member.size > MAX_SIDE_FILE:
            return None
        fh = tar.extractfile(member)
        return fh.read() if fh is not None else None


def variant_table(manifest: Manifest, report: Any) -> list[dict[str, Any]]:
    """Rows from report.json (left-out variants included) or else from the manifest."""
    rows = report.get("variants") if isinstance(report, dict) else report
    if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
        return rows
    return [
        {"runtime": a.runtime, "precision": a.precision, "size": a.size, **a.metrics}
        for a in manifest.artifacts
    ]


def store_upload(
    db: Session, config: HubConfig, stream: IO[bytes], uploaded_by: str | None
) -> ModelVersion:
    """Spool, verify and register an uploaded bundle; nothing is kept if any check fails."""
    config.bundle_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=config.bundle_dir, prefix=".upload-", suffix=".ekb")
    tmp = Path(tmp_name)
    try:
        digest, size = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > config.max_upload_bytes:
                    raise ApiError(413, "too_large", "bundle exceeds the upload limit")
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise ApiError(400, "empty", "the 'bundle' file is empty")
        manifest = check_bundle(tmp, config.trusted_key)
        exists = db.scalar(
            select(ModelVersion).where(
                ModelVersion.name == manifest.name, ModelVersion.version == manifest.version
            )
        )
        if exists is not None:
            raise ApiError(
                409, "exists", f"{manifest.name} v{manifest.version} is already registered"
            )
        card = (_side_file(tmp, CARD_NAME) or b"").decode("utf-8", errors="replace")
        report_raw = _side_file(tmp, REPORT_NAME)
        try:
            report = json.loads(report_raw) if report_raw else None
        except json.JSONDecodeError:
            report = None
        rel = Path(manifest.name) / f"{manifest.version}.ekb"
        final = config.bundle_dir / rel
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        row = ModelVersion(
            name=manifest.name,
            version=manifest.version,
            sha256=digest.hexdigest(),
            size=size,
            path=str(rel),
            manifest=manifest.to_dict(),
            card=card,
            variants=variant_table(manifest, report),
            metrics=_metrics(manifest, report),
            created=time.time(),
            uploaded_by=uploaded_by,
        )
        db.add(row)
        db.flush()
        return row
    finally:
        tmp.unlink(missing_ok=True)


def _metrics(manifest: Manifest, report: Any) -> dict[str, Any]:
    """Headline numbers of a version: ``accuracy`` is the float model's test accuracy when
    the exporter recorded it, else the best variant's; every variant's accuracy is kept."""
    out: dict[str, Any] = {}
    for key in ("metrics", "training_metrics"):  # bring-your-own / edgekit train lineage
        found = manifest.lineage.get(key)
        if isinstance(found, dict):
            out.update({k: v for k, v in found.items() if isinstance(v, (int, float))})
    if isinstance(report, dict) and isinstance(report.get("float_model"), dict):
        acc = report["float_model"].get("test_accuracy")
        if isinstance(acc, (int, float)):
            out["test_accuracy"] = float(acc)
    variants = {
        a.target: float(a.metrics["accuracy"])
        for a in manifest.artifacts
        if isinstance(a.metrics.get("accuracy"), (int, float))
    }
    if variants:
        out["variant_accuracy"] = variants
    if "accuracy" not in out:
        if "test_accuracy" in out:
            out["accuracy"] = out["test_accuracy"]
        elif variants:
            out["accuracy"] = max(variants.values())
    return out


def bundle_path(config: HubConfig, row: ModelVersion) -> Path:
    return config.bundle_dir / row.path


def deletion_blockers(db: Session, row: ModelVersion) -> list[str]:
    """Why a version must stay: devices run it, or a rollout could roll back to it."""
    why: list[str] = []
    running = db.scalars(
        select(Device.id).where(Device.model_name == row.name, Device.model_version == row.version)
    ).all()
    if running:
        why.append(f"{len(running)} device(s) run it ({', '.join(sorted(running)[:5])})")
    targets = db.scalars(
        select(Deployment.rollout_id)
        .join(Rollout, Rollout.id == Deployment.rollout_id)
        .where(
            Deployment.from_name == row.name,
            Deployment.from_version == row.version,
            Deployment.updated_by_rollout.is_(True),
            Rollout.state.in_(("draft", "running", "paused", "completed")),
        )
    ).all()
    if targets:
        why.append(f"it is the rollback target of rollout(s) {', '.join(sorted(set(targets)))}")
    active = db.scalars(
        select(Rollout.id).where(
            Rollout.model_name == row.name,
            Rollout.model_version == row.version,
            Rollout.state.in_(("draft", "running", "paused")),
        )
    ).all()
    if active:
        why.append(f"rollout(s) {', '.join(active)} deploy it")
    aliases = db.scalars(
        select(Alias.alias).where(Alias.name == row.name, Alias.version == row.version)
    ).all()
    if aliases:
        why.append(f"alias(es) {', '.join(aliases)} point at it")
    return why


def delete_version(db: Session, config: HubConfig, row: ModelVersion) -> None:
    path = bundle_path(config, row)
    db.delete(row)
    db.flush()
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()  # only succeeds once the model's last version is gone
