"""Samples as a device's capture would build them, and a device with an upload token."""

from __future__ import annotations

import io
import time
import uuid
from typing import Any

import numpy as np
from PIL import Image

from cloud.hub.http.auth import hash_token, new_token
from cloud.hub.storage import Device
from edge.contract import Sample, SampleBatch, SampleInput


def png(seed: int = 0, side: int = 8) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (side, side), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def npy(arr: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, arr, allow_pickle=False)
    return out.getvalue()


def image_input(seed: int = 0) -> SampleInput:
    return SampleInput(kind="image", data=png(seed), media_type="image/png")


def array_input(seed: int = 0) -> SampleInput:
    arr = np.random.default_rng(seed).uniform(0, 1, (8, 8, 1)).astype(np.float32)
    return SampleInput(kind="array", data=npy(arr), dtype="float32", shape=(8, 8, 1))


def tabular_input(seed: int = 0) -> SampleInput:
    return SampleInput(kind="tabular", features={"petal_length": 1.4 + seed, "petal_width": 0.2})


def sample(
    inp: SampleInput | None = None,
    *,
    label: str = "7",
    reason: str = "low_confidence",
    version: int = 2,
    model: str = "digits",
    known: str | None = None,
    scores: list[float] | None = None,
    captured_at: float | None = None,
) -> Sample:
    scores = scores if scores is not None else [0.05] * 7 + [0.55, 0.05, 0.05]
    return Sample(
        id=uuid.uuid4().hex,
        captured_at=captured_at or time.time(),
        reason=reason,
        model_name=model,
        model_version=version,
        label=label,
        index=int(np.argmax(scores)),
        scores=tuple(scores),
        known_label=known,
        input=inp or image_input(),
    )


def body(device: str, *samples: Sample) -> dict[str, Any]:
    return SampleBatch(device=device, samples=tuple(samples)).to_dict()


def add_device(session: Any, device: str) -> dict[str, str]:
    """An enrolled device; returns its Authorization header."""
    token = new_token("ekd")
    session.add(
        Device(
            id=device,
            tags=[],
            enrolled=True,
            token_hash=hash_token(token),
            first_seen=time.time(),
            capabilities={},
            kpis={},
        )
    )
    session.commit()
    return {"Authorization": f"Bearer {token}"}
