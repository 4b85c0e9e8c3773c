"""Freeze the labeled samples a filter matches into the next, immutable dataset version.

Each sample's label as it is now goes into ``dataset_samples`` and its input file is
linked (or copied) to ``<data dir>/datasets/<name>/<version>/``, so a later relabel, delete
or retention sweep never changes a frozen version. The fingerprint is sha256 over the
sorted ``(sample id, label, file sha256)`` lines: two versions with the same samples and
labels have the same fingerprint.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.errors import HubError
from cloud.hub.config import HubConfig
from cloud.hub.samples import SampleFilter, SampleRow, query_samples, sample_file
from cloud.hub.storage import DatasetSample, DatasetVersion

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_SAMPLES = 200_000


def check_name(name: object) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise HubError(
            "a dataset name is 1-64 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit"
        )
    return name


def fingerprint(lines: list[tuple[str, str, str]]) -> str:
    """sha256 over the sorted ``(id, label, sha256)`` lines, as ``sha256:<hex>``."""
    h = hashlib.sha256()
    for sid, label, digest in sorted(lines):
        h.update(f"{sid}\t{label}\t{digest}\n".encode())
    return "sha256:" + h.hexdigest()


def version_dir(config: HubConfig, name: str, version: int) -> Path:
    return config.data_dir / "datasets" / name / str(version)


def _keep(src: Path, dst: Path) -> None:
    """A hard link where the file system allows it (samples are written once), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def freeze(
    session: Session,
    config: HubConfig,
    name: str,
    filters: SampleFilter,
    actor: str | None,
) -> DatasetVersion:
    """Create ``name``'s next version from the labeled samples ``filters`` matches (the
    caller commits). HubError 400 for a filter on unlabeled samples, 409 when nothing
    matches or the samples mix input kinds."""
    check_name(name)
    if filters.labeled is False:
        raise HubError("a dataset holds labeled samples only: drop 'labeled': false")
    rows = query_samples(session, replace(filters, labeled=True), limit=MAX_SAMPLES + 1)
    if len(rows) > MAX_SAMPLES:
        raise HubError(f"more than {MAX_SAMPLES} samples match: narrow the filter", status=413)
    if not rows:
        raise HubError(
            f"no labeled samples match {filters.to_dict() or 'the filter'}: label some first",
            status=409, code="empty",
        )  # fmt: skip
    kinds = sorted({r.kind for r in rows})
    if len(kinds) > 1:
        raise HubError(
            f"the matching samples mix {' and '.join(kinds)} inputs: filter by model",
            status=409, code="mixed",
        )  # fmt: skip
    models = sorted({r.model_name for r in rows})
    version = (
        int(
            session.scalar(
                select(func.max(DatasetVersion.version)).where(DatasetVersion.name == name)
            )
            or 0
        )
        + 1
    )
    folder = version_dir(config, name, version)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=folder.parent))
    kept: list[tuple[SampleRow, Path]] = []
    for r in rows:
        try:
            _keep(sample_file(config.data_dir, r), staging / Path(r.file).name)
        except OSError:
            continue  # retention removed it since the query: it is simply not in the version
        kept.append((r, folder / Path(r.file).name))
    if not kept:
        shutil.rmtree(staging, ignore_errors=True)
        raise HubError("the matching samples' files are gone", status=409, code="empty")
    row = DatasetVersion(
        name=name,
        version=version,
        fingerprint=fingerprint([(r.id, str(r.label), r.sha256) for r, _ in kept]),
        filter=filters.to_dict(),
        kind=kinds[0],
        model_name=models[0] if len(models) == 1 else None,
        labels=sorted({str(r.label) for r, _ in kept}),
        counts={
            "total": len(kept),
            "by_device": dict(sorted(Counter(r.device for r, _ in kept).items())),
            "by_label": dict(sorted(Counter(str(r.label) for r, _ in kept).items())),
        },
        created=time.time(),
        created_by=actor,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # another request froze this version number first
        session.rollback()
        shutil.rmtree(staging, ignore_errors=True)
        raise HubError(
            f"{name} v{version} was created at the same time: try again", status=409,
            code="conflict",
        ) from exc  # fmt: skip
    session.add_all(
        DatasetSample(
            dataset_id=row.id,
            sample_id=r.id,
            device_id=r.device,
            label=str(r.label),
            sha256=r.sha256,
            file=str(dst.relative_to(config.data_dir)),
            features=r.features if r.kind == "tabular" else None,
            captured_at=r.captured_at,
        )
        for r, dst in kept
    )
    session.flush()
    if folder.exists():  # left by a version whose transaction never committed
        shutil.rmtree(folder)
    os.replace(staging, folder)
    return row
