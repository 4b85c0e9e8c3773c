"""Storing a device's upload: idempotent by sample id, rate-limited per device, inputs
checked (a PNG must decode, an ``.npy`` must hold the dtype and shape it claims).

Order of writes: the file first (atomic, fsync'd, named by the sample id), then the row.
A crash between the two leaves a file without a row, which the device re-sends (same
name, same bytes) and retention sweeps if it never does; never a row without its file.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud.errors import HubError
from cloud.hub.samples.rows import relative_file
from cloud.hub.storage import SampleRecord
from edge.contract import Sample, SampleBatch, UploadReceipt
from edge.durable import write_atomic

log = logging.getLogger(__name__)
RATE_WINDOW_S = 60.0
MAX_PIXELS = 4096 * 4096  # a PNG of a few KB can claim gigapixels: refuse before decoding


class RateLimited(HubError):
    """429: the device sent more samples in the last minute than the hub takes."""

    def __init__(self, retry_after: float, rate: int) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(
            f"more than {rate} samples a minute from this device: retry in {self.retry_after} s",
            status=429,
            code="rate_limited",
        )


@dataclass(frozen=True)
class Stored:
    """A checked sample ready to write: its file's bytes and the row's extra fields."""

    sample: Sample
    data: bytes
    media_type: str
    array: dict[str, object] | None


def check_input(sample: Sample) -> Stored:
    """The bytes to store for ``sample``'s input; HubError when the input is not what it
    says it is (the sample is rejected, the rest of the batch goes on)."""
    texts = [sample.model_name, sample.label, sample.known_label, sample.shadow_label,
             *(sample.input.features or {})]  # fmt: skip
    if any(t is not None and "\x00" in t for t in texts):
        raise HubError("a name or label holds a NUL character")  # no database stores one
    inp = sample.input
    if inp.kind == "image":
        data = inp.data or b""
        try:
            with Image.open(io.BytesIO(data)) as img:
                if img.format != "PNG" or img.width * img.height > MAX_PIXELS:
                    raise HubError(f"input is not a PNG of at most {MAX_PIXELS} pixels")
                img.verify()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise HubError(f"input is not a readable PNG: {exc}") from None
        return Stored(sample, data, "image/png", None)
    if inp.kind == "array":
        data = inp.data or b""
        try:
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise HubError(f"input is not a readable .npy array: {exc}") from None
        if str(arr.dtype) != inp.dtype or tuple(arr.shape) != tuple(inp.shape or ()):
            raise HubError(
                f"input array is {arr.dtype} {list(arr.shape)}, not the {inp.dtype} "
                f"{list(inp.shape or ())} it claims"
            )
        return Stored(
            sample, data, "application/x-npy", {"dtype": inp.dtype, "shape": list(arr.shape)}
        )
    row = json.dumps(inp.features, sort_keys=True, allow_nan=False).encode("utf-8")
    return Stored(sample, row, "application/json", None)


def _check_rate(session: Session, device: str, new: int, rate: int, now: float) -> None:
    """Refuse the batch when it would take the device over ``rate`` samples received in
    the last minute (a batch into an empty window always fits, however large)."""
    since = now - RATE_WINDOW_S
    times = list(
        session.scalars(
            select(SampleRecord.received_at)
            .where(SampleRecord.device_id == device, SampleRecord.received_at > since)
            .order_by(SampleRecord.received_at)
        )
    )
    over = len(times) + new - rate
    if times and over > 0:
        # wait until enough of the window's samples have aged out of it
        oldest_needed = times[min(over, len(times)) - 1]
        raise RateLimited(oldest_needed + RATE_WINDOW_S - now, rate)


def _record(item: Stored, device: str, digest: str, now: float) -> SampleRecord:
    s = item.sample
    return SampleRecord(
        id=s.id,
        device_id=device,
        model_name=s.model_name[:64],
        model_version=s.model_version,
        reason=s.reason,
        predicted=s.label,
        predicted_index=s.index,
        confidence=s.confidence,
        scores=None if s.scores is None else list(s.scores),
        known_label=s.known_label,
        shadow=None
        if s.shadow_version is None
        else {"version": s.shadow_version, "label": s.shadow_label},
        kind=s.input.kind,
        media_type=item.media_type,
        features=dict(s.input.features or {}) if s.input.kind == "tabular" else None,
        array=item.array,
        size=len(item.data),
        sha256=digest,
        captured_at=s.captured_at,
        received_at=now,
    )


def store_batch(
    session: Session,
    samples_dir: Path,
    batch: SampleBatch,
    rejected: list[tuple[str, str]],
    *,
    rate_per_minute: int,
    now: float | None = None,
) -> UploadReceipt:
    """Store ``batch`` (already parsed; ``rejected`` are the samples the parser refused)
    and commit. Re-sent ids are ``duplicates``, not errors; raises :class:`RateLimited`."""
    now = time.time() if now is None else now
    for _attempt in range(3):  # a concurrent upload of the same ids: look again
        try:
            return _store(session, samples_dir, batch, list(rejected), rate_per_minute, now)
        except IntegrityError:
            session.rollback()
            log.info("concurrent upload of the same samples from %s; retrying", batch.device)
    raise HubError("the upload collided with another one three times", status=409, code="conflict")


def _store(
    session: Session,
    samples_dir: Path,
    batch: SampleBatch,
    rejected: list[tuple[str, str]],
    rate: int,
    now: float,
) -> UploadReceipt:
    ids = [s.id for s in batch.samples]
    found = session.execute(
        select(SampleRecord.id, SampleRecord.device_id).where(SampleRecord.id.in_(ids))
    )
    owners = {sid: device for sid, device in found.tuples()}
    duplicates = [i for i in ids if owners.get(i) == batch.device]
    new = [s for s in batch.samples if s.id not in owners]
    rejected += [
        (i, "this id belongs to another device's sample")
        for i in ids
        if i in owners and owners[i] != batch.device
    ]
    _check_rate(session, batch.device, len(new), rate, now)
    accepted: list[str] = []
    device_dir = samples_dir / batch.device
    for sample in new:
        try:
            item = check_input(sample)
        except HubError as exc:
            rejected.append((sample.id, exc.message))
            continue
        try:
            device_dir.mkdir(parents=True, exist_ok=True)
            write_atomic(
                samples_dir / relative_file(batch.device, sample.id, sample.input.kind), item.data
            )
        except OSError as exc:  # a full or read-only disk: the device keeps them, retries
            session.rollback()
            log.error("cannot store samples of %s: %s", batch.device, exc)
            raise HubError(
                f"the hub cannot store samples now: {exc.strerror or exc}",
                status=503,
                code="storage_unavailable",
            ) from None
        digest = hashlib.sha256(item.data).hexdigest()
        session.add(_record(item, batch.device, digest, now))
        accepted.append(sample.id)
    session.commit()
    return UploadReceipt(tuple(accepted), tuple(duplicates), tuple(rejected))
