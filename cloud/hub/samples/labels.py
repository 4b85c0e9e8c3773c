"""Operator work on stored samples: label and relabel (each change kept in
``sample_labels``: from what, to what, who, when), delete (rows, history and files), and
the counts the labeling page shows as progress."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import case, delete, func, select
from sqlalchemy.orm import Session

from cloud.errors import HubError
from cloud.hub.samples.filters import SampleFilter, check_label
from cloud.hub.samples.rows import relative_file
from cloud.hub.storage import SampleLabel, SampleRecord

log = logging.getLogger(__name__)
MAX_IDS = 5000  # samples one label or delete request may name
_CHUNK = 500  # ids per IN (...) query


@dataclass(frozen=True)
class LabelResult:
    updated: list[str]
    unchanged: list[str]
    missing: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"updated": self.updated, "unchanged": self.unchanged, "missing": self.missing}


def check_ids(ids: Any, where: str = "ids") -> list[str]:
    """A list of sample ids (deduplicated, in order); HubError when it is not one."""
    if not isinstance(ids, list) or not ids or len(ids) > MAX_IDS:
        raise HubError(f"{where!r} must be a list of 1-{MAX_IDS} sample ids")
    if not all(isinstance(i, str) and 0 < len(i) <= 64 for i in ids):
        raise HubError(f"{where!r} must hold sample ids (strings)")
    return list(dict.fromkeys(ids))


def _records(session: Session, ids: list[str]) -> dict[str, SampleRecord]:
    out: dict[str, SampleRecord] = {}
    for i in range(0, len(ids), _CHUNK):
        part = ids[i : i + _CHUNK]
        out.update(
            (r.id, r)
            for r in session.scalars(select(SampleRecord).where(SampleRecord.id.in_(part)))
        )
    return out


def set_labels(
    session: Session, labels: Mapping[str, Any], by: str | None, now: float | None = None
) -> LabelResult:
    """Give each sample id its label (None clears it) and commit. Unknown ids are reported
    as ``missing``, not an error: another operator or retention may have deleted them."""
    now = time.time() if now is None else now
    ids = check_ids(list(labels))
    wanted = {i: check_label(labels[i], f"label of {i}") for i in ids}
    records = _records(session, ids)
    updated, unchanged = [], []
    for sid in ids:
        record = records.get(sid)
        if record is None:
            continue
        new = wanted[sid]
        if record.label == new:
            unchanged.append(sid)
            continue
        session.add(SampleLabel(sample_id=sid, label=new, previous=record.label, by=by, at=now))
        record.label = new
        record.labeled_by = by if new is not None else None
        record.labeled_at = now if new is not None else None
        updated.append(sid)
    session.commit()
    return LabelResult(updated, unchanged, [i for i in ids if i not in records])


def label_history(session: Session, sample_id: str) -> list[dict[str, Any]]:
    """Every label change of one sample, oldest first."""
    rows = session.scalars(
        select(SampleLabel).where(SampleLabel.sample_id == sample_id).order_by(SampleLabel.id)
    )
    return [{"label": r.label, "previous": r.previous, "by": r.by, "at": r.at} for r in rows]


def delete_samples(
    session: Session, samples_dir: Path, ids: Iterable[str]
) -> tuple[list[str], list[str]]:
    """Delete samples (rows, label history, then files) and commit; (deleted, missing)."""
    wanted = check_ids(list(ids))
    records = _records(session, wanted)
    files = [relative_file(r.device_id, r.id, r.kind) for r in records.values()]
    found = list(records)
    for i in range(0, len(found), _CHUNK):
        part = found[i : i + _CHUNK]
        session.execute(delete(SampleLabel).where(SampleLabel.sample_id.in_(part)))
        session.execute(delete(SampleRecord).where(SampleRecord.id.in_(part)))
    session.commit()
    remove_files(samples_dir, files)  # after the commit: a crash leaves files, never rows
    return [i for i in wanted if i in records], [i for i in wanted if i not in records]


def remove_files(samples_dir: Path, files: Iterable[str]) -> None:
    for name in files:
        try:
            (samples_dir / name).unlink(missing_ok=True)
        except OSError as exc:  # retention's orphan sweep tries again later
            log.warning("cannot delete sample file %s: %s", name, exc)


def summary(session: Session, filters: SampleFilter) -> dict[str, Any]:
    """Totals for ``filters``: labeled, and by device, model version, reason, predicted
    class and label (what the labeling page's progress and filter menus show)."""
    s = SampleRecord
    labeled = func.sum(case((s.label.is_not(None), 1), else_=0))

    def grouped(*cols: Any) -> list[Any]:
        q = filters.apply(select(*cols, func.count(), labeled).group_by(*cols))
        return list(session.execute(q.order_by(*cols)).tuples())

    by_device = {d: {"total": n, "labeled": int(lab or 0)} for d, n, lab in grouped(s.device_id)}
    total = sum(v["total"] for v in by_device.values())
    done = sum(v["labeled"] for v in by_device.values())
    return {
        "total": total,
        "labeled": done,
        "unlabeled": total - done,
        "by_device": by_device,
        "by_model": [
            {"name": m, "version": v, "total": n, "labeled": int(lab or 0)}
            for m, v, n, lab in grouped(s.model_name, s.model_version)
        ],
        "by_reason": {r: n for r, n, _l in grouped(s.reason)},
        "by_predicted": {p: n for p, n, _l in grouped(s.predicted)},
        "by_label": {lab: n for lab, n, _l in grouped(s.label) if lab is not None},
        "kinds": sorted({k for k, _n, _l in grouped(s.kind)}),
    }
