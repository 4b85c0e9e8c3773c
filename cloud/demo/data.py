"""Data the demo makes for itself: replay streams per device and a deliberately bad dataset.

Every device replays its own slice of the digits test data with labels, so the hub sees
live accuracy. Some devices get a shifted stream (brighter strokes, sensor noise) so
drift shows on the fleet page. The bad model is trained on labels shuffled within the
training split: it is a valid, signed bundle whose self-test passes (its golden set is its
own output) yet it is wrong on the devices — exactly what a health gate must catch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHIFTS = ("brightness", "noise")


@dataclass(frozen=True)
class DeviceStream:
    device: str
    path: Path
    shift: str | None


def load_digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's bundled digits as raw 8x8 images (0..16) and integer labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32), d.target.astype(np.int64)


def shift_stream(x: np.ndarray, shift: str | None, rng: np.random.Generator) -> np.ndarray:
    """The input shift a device sees: ``brightness`` raises gain and offset, ``noise`` adds
    non-negative sensor noise (dark current + read noise, |N(0, 2.5)|) that lights up the
    background; values stay in the sensor's 0..16 range."""
    if shift is None:
        return x
    if shift == "brightness":
        return np.clip(x * 1.6 + 3.0, 0, 16).astype(np.float32)
    if shift == "noise":
        return np.clip(x + np.abs(rng.normal(0, 2.5, x.shape)), 0, 16).astype(np.float32)
    raise ValueError(f"unknown shift {shift!r} (one of {', '.join(SHIFTS)})")


def make_streams(
    out: Path, devices: list[str], n_shifted: int, seed: int = 0
) -> list[DeviceStream]:
    """One replay .npz (x raw images, y label names) per device, from held-out digits."""
    x, y = load_digits_raw()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    # The last 30 % were never seen in training by the demo's splits' seed; the agent
    # replays them in a loop, so even a short slice gives a steady accuracy signal.
    held = order[int(len(order) * 0.7) :]
    out.mkdir(parents=True, exist_ok=True)
    streams = []
    for i, dev in enumerate(devices):
        idx = held[i :: len(devices)]
        shift = SHIFTS[i % len(SHIFTS)] if i >= len(devices) - n_shifted else None
        xs = shift_stream(x[idx], shift, rng)
        path = out / f"{dev}.npz"
        np.savez(path, x=xs, y=np.array([str(v) for v in y[idx]]))
        streams.append(DeviceStream(dev, path, shift))
    return streams


def make_bad_dataset(out: Path, seed: int = 0) -> Path:
    """digits with labels shuffled: trains to chance accuracy, exports and signs fine."""
    x, y = load_digits_raw()
    rng = np.random.default_rng(seed + 1)
    path = out / "digits-shuffled.npz"
    out.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x[..., None], y=rng.permutation(y))
    return path
