"""Retention: what the hub's sample worker deletes, and when.

- An unlabeled sample older than ``max_age_s`` (hub receive time) goes; labeled samples
  are an operator's work and stay until deleted, or until the count limit needs room.
- Over ``max_count`` samples, the oldest go, unlabeled ones first.
- A file with no row (a crash between writing the file and committing its row, or a
  delete whose unlink failed) goes once it is older than :data:`ORPHAN_GRACE_S`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from cloud.hub.samples.labels import MAX_IDS, delete_samples, remove_files
from cloud.hub.storage import SampleRecord

ORPHAN_GRACE_S = 3600.0  # an upload in flight has written its file but not its row yet


@dataclass(frozen=True)
class RetentionResult:
    expired: int  # unlabeled samples over the max age
    over_count: int  # oldest samples over the max count
    orphans: int  # files without a row

    @property
    def total(self) -> int:
        return self.expired + self.over_count + self.orphans


def enforce_retention(
    session: Session,
    samples_dir: Path,
    *,
    max_age_s: float,
    max_count: int,
    now: float | None = None,
) -> RetentionResult:
    now = time.time() if now is None else now
    expired = 0
    while True:
        ids = list(
            session.scalars(
                select(SampleRecord.id)
                .where(SampleRecord.label.is_(None), SampleRecord.received_at < now - max_age_s)
                .limit(MAX_IDS)
            )
        )
        if not ids:
            break
        expired += len(delete_samples(session, samples_dir, ids)[0])
    over_count = 0
    excess = int(session.scalar(select(func.count()).select_from(SampleRecord)) or 0) - max_count
    while excess > 0:
        ids = list(
            session.scalars(
                select(SampleRecord.id)
                .order_by(
                    case((SampleRecord.label.is_(None), 0), else_=1),
                    SampleRecord.received_at,
                    SampleRecord.id,
                )
                .limit(min(excess, MAX_IDS))
            )
        )
        if not ids:
            break
        gone = len(delete_samples(session, samples_dir, ids)[0])
        over_count += gone
        excess -= max(gone, 1)
    return RetentionResult(expired, over_count, sweep_orphans(session, samples_dir, now))


def sweep_orphans(session: Session, samples_dir: Path, now: float) -> int:
    """Delete sample files older than the grace period that no row names."""
    if not samples_dir.is_dir():
        return 0
    removed = 0
    for device_dir in samples_dir.iterdir():
        if not device_dir.is_dir():
            continue
        candidates: dict[str, Path] = {}
        for path in device_dir.iterdir():
            try:
                old = now - path.stat().st_mtime > ORPHAN_GRACE_S
            except OSError:
                continue
            if old and path.is_file():
                candidates[path.name] = path
        names = list(candidates)
        for i in range(0, len(names), 500):
            part = names[i : i + 500]
            ids = [n.split(".", 1)[0].lstrip(".")[:32] for n in part]
            known = set(
                session.scalars(
                    select(SampleRecord.id).where(
                        SampleRecord.id.in_(ids), SampleRecord.device_id == device_dir.name
                    )
                )
            )
            gone = [
                f"{device_dir.name}/{n}"
                for n, sid in zip(part, ids, strict=True)
                if sid not in known or n.startswith(".")
            ]
            remove_files(samples_dir, gone)
            removed += len(gone)
    return removed
