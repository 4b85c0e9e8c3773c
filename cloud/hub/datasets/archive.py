"""A dataset version as ``edgekit train`` reads it: the export folder (cloud/data/field.py)
zipped, built once per version (versions are immutable) and kept beside its files."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.data.field import DATA_FILES, SCHEMA, FieldRecord, kind_format, write_export
from cloud.hub.config import HubConfig
from cloud.hub.datasets.freeze import version_dir
from cloud.hub.storage import DatasetSample, DatasetVersion

ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed member times: the same version, the same bytes


def meta(dv: DatasetVersion) -> dict[str, Any]:
    """The version's ``edgekit-dataset.json`` (``merged`` is set by the CLI's --merge)."""
    fmt = kind_format(dv.kind)
    return {
        "schema": SCHEMA,
        "name": dv.name,
        "version": dv.version,
        "fingerprint": dv.fingerprint,
        "kind": dv.kind,
        "format": fmt,
        "data": DATA_FILES[fmt],
        "label_column": "label",
        "model": dv.model_name,
        "labels": list(dv.labels or []),
        "filter": dict(dv.filter or {}),
        "counts": dict(dv.counts or {}),
        "samples": int((dv.counts or {}).get("total") or 0),
        "created": dv.created,
        "created_by": dv.created_by,
        "merged": None,
    }


def records(session: Session, config: HubConfig, dv: DatasetVersion) -> list[FieldRecord]:
    rows = session.scalars(
        select(DatasetSample)
        .where(DatasetSample.dataset_id == dv.id)
        .order_by(DatasetSample.captured_at, DatasetSample.sample_id)
    )
    return [
        FieldRecord(
            id=r.sample_id,
            device=r.device_id,
            label=r.label,
            file=None if dv.kind == "tabular" else config.data_dir / r.file,
            features=r.features,
        )
        for r in rows
    ]


def archive_path(config: HubConfig, dv: DatasetVersion) -> Path:
    folder = version_dir(config, dv.name, dv.version)
    return folder.parent / f"{dv.version}.zip"


def build_archive(session: Session, config: HubConfig, dv: DatasetVersion) -> Path:
    """The version's zip (built on first use)."""
    final = archive_path(config, dv)
    if final.is_file():
        return final
    with tempfile.TemporaryDirectory(prefix=".export-", dir=final.parent) as tmp:
        folder = write_export(Path(tmp) / "export", meta(dv), records(session, config, dv))
        out = Path(tmp) / "archive.zip"
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            for f in sorted(p for p in folder.rglob("*") if p.is_file()):
                info = zipfile.ZipInfo(f.relative_to(folder).as_posix(), ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, f.read_bytes())
        os.replace(out, final)
    return final
