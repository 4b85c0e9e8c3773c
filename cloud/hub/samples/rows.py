"""One stored sample as code outside the store sees it (:class:`SampleRow`), its file, and
the read queries: :func:`query_samples`, :func:`count_samples`, :func:`get_sample`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.errors import HubError
from cloud.hub.samples.filters import SampleFilter
from cloud.hub.storage import SampleRecord

EXTENSIONS = {"image": "png", "array": "npy", "tabular": "json"}
MEDIA_TYPES = {"png": "image/png", "npy": "application/x-npy", "json": "application/json"}


@dataclass(frozen=True)
class SampleRow:
    """The API's sample JSON as a typed value; ``file`` is relative to the samples dir."""

    id: str
    device: str
    model: dict[str, Any]  # {"name", "version"}
    reason: str
    prediction: dict[str, Any]  # {"label", "index", "confidence", "scores"}
    known_label: str | None
    shadow: dict[str, Any] | None
    label: str | None
    labeled_by: str | None
    labeled_at: float | None
    kind: str  # image | tabular | array
    media_type: str
    features: dict[str, Any] | None
    array: dict[str, Any] | None  # {"dtype", "shape"} for arrays
    size: int
    sha256: str
    file: str  # "<device>/<id>.<ext>"
    captured_at: float
    received_at: float

    @property
    def model_name(self) -> str:
        return str(self.model["name"])

    @property
    def model_version(self) -> int:
        return int(self.model["version"])

    @property
    def predicted(self) -> str:
        return str(self.prediction["label"])

    @property
    def confidence(self) -> float | None:
        value = self.prediction.get("confidence")
        return None if value is None else float(value)

    @property
    def input_url(self) -> str:
        return f"/api/v1/samples/{self.id}/input"

    @staticmethod
    def from_record(r: SampleRecord) -> SampleRow:
        return SampleRow(
            id=r.id,
            device=r.device_id,
            model={"name": r.model_name, "version": r.model_version},
            reason=r.reason,
            prediction={
                "label": r.predicted,
                "index": r.predicted_index,
                "confidence": r.confidence,
                "scores": r.scores,
            },
            known_label=r.known_label,
            shadow=r.shadow,
            label=r.label,
            labeled_by=r.labeled_by,
            labeled_at=r.labeled_at,
            kind=r.kind,
            media_type=r.media_type,
            features=r.features,
            array=r.array,
            size=r.size,
            sha256=r.sha256,
            file=relative_file(r.device_id, r.id, r.kind),
            captured_at=r.captured_at,
            received_at=r.received_at,
        )

    def to_dict(self) -> dict[str, Any]:
        """The API's JSON shape (docs/hub-api.md, "Samples")."""
        return {
            "id": self.id,
            "device": self.device,
            "model": dict(self.model),
            "reason": self.reason,
            "prediction": dict(self.prediction),
            "known_label": self.known_label,
            "shadow": self.shadow,
            "label": self.label,
            "labeled_by": self.labeled_by,
            "labeled_at": self.labeled_at,
            "kind": self.kind,
            "media_type": self.media_type,
            "features": self.features,
            "array": self.array,
            "size": self.size,
            "sha256": self.sha256,
            "input_url": self.input_url,
            "captured_at": self.captured_at,
            "received_at": self.received_at,
        }


def relative_file(device: str, sample_id: str, kind: str) -> str:
    return f"{device}/{sample_id}.{EXTENSIONS[kind]}"


def sample_file(data_dir: Path, row: SampleRow) -> Path:
    """Where ``row``'s input is stored: ``<data dir>/samples/<device>/<id>.<ext>``."""
    return Path(data_dir) / "samples" / row.file


def query_samples(
    session: Session, filters: SampleFilter, limit: int | None = None, offset: int = 0
) -> list[SampleRow]:
    """The matching samples, oldest capture first (a stable order: ties broken by id)."""
    q = filters.apply(select(SampleRecord)).order_by(SampleRecord.captured_at, SampleRecord.id)
    if offset:
        q = q.offset(offset)
    if limit is not None:
        q = q.limit(limit)
    return [SampleRow.from_record(r) for r in session.scalars(q)]


def count_samples(session: Session, filters: SampleFilter) -> int:
    q = filters.apply(select(func.count()).select_from(SampleRecord))
    return int(session.scalar(q) or 0)


def get_sample(session: Session, sample_id: str) -> SampleRow:
    """One sample; HubError 404 when there is no such id."""
    record = session.get(SampleRecord, sample_id) if len(sample_id) <= 32 else None
    if record is None:
        raise HubError(f"sample {sample_id[:40]!r} does not exist", status=404, code="not_found")
    return SampleRow.from_record(record)
