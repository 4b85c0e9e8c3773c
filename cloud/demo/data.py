"""Data the demo makes for itself: the original dataset, replay streams per device and a
deliberately bad dataset.

The devices' cameras deliver 8-bit grayscale, so the original data is scikit-learn's
digits written as 8x8 PNGs (0..16 mapped onto 0..255), one folder per class: the same
format the devices' captured samples come back in, so a field dataset merges with it and
every version (v1 to the retrained v4) reads the same raw range. Every device replays its
own slice of held-out digits with labels, so the hub sees live accuracy. Some devices have
their camera mounted sideways (``rotated``): v2 gets most of their digits wrong, with full
confidence, and their predicted-class mix drifts; pixel statistics do not change, so a model
trained on original plus field data can honestly clear that drift. The bad model is trained
on shuffled labels: a valid, signed bundle whose self-test passes (its golden set is its
own output) yet it is wrong on the devices — exactly what a health gate must catch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

SHIFTS = ("rotated",)  # what the demo's shifted devices get (one per device, in turn)
KNOWN_SHIFTS = ("rotated", "brightness", "noise")
PIXEL_SCALE = 255.0 / 16.0  # digits' 0..16 onto a camera's 0..255


@dataclass(frozen=True)
class DeviceStream:
    device: str
    path: Path
    shift: str | None


def load_digits_raw() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's bundled digits as 8x8 8-bit images (0..255, float32) and integer labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.rint(d.images * PIXEL_SCALE).astype(np.float32), d.target.astype(np.int64)


def write_original(out: Path) -> Path:
    """The original dataset: every digit as an 8x8 grayscale PNG in ``out/<label>/``."""
    from PIL import Image

    x, y = load_digits_raw()
    for i, (img, label) in enumerate(zip(x, y, strict=True)):
        folder = out / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.astype(np.uint8), mode="L").save(folder / f"{i:04d}.png")
    return out


def shift_stream(x: np.ndarray, shift: str | None, rng: np.random.Generator) -> np.ndarray:
    """The input shift a device sees: ``rotated`` turns each image a quarter turn (a camera
    mounted sideways), ``brightness`` raises gain and offset, ``noise`` adds non-negative
    sensor noise (|N(0, 40)|) that lights up the background; values stay in 0..255.

    Only ``rotated`` is used by the demo: the intensity shifts hardly hurt v2 (it still
    gets 94-100 % of those digits right) and move the pixel histograms so far from any
    reference that mixes in the original data that input drift could never clear.
    """
    if shift is None:
        return x
    if shift == "rotated":
        return np.ascontiguousarray(np.rot90(x, 1, axes=(1, 2))).astype(np.float32)
    if shift == "brightness":
        return np.clip(x * 1.6 + 48.0, 0, 255).astype(np.float32)
    if shift == "noise":
        return np.clip(x + np.abs(rng.normal(0, 40.0, x.shape)), 0, 255).astype(np.float32)
    raise ValueError(f"unknown shift {shift!r} (one of {', '.join(KNOWN_SHIFTS)})")


def make_streams(
    out: Path, devices: list[str], n_shifted: int, seed: int = 0
) -> list[DeviceStream]:
    """One replay .npz (x raw images, y label names) per device.

    The clean devices share 30 % of the digits (the agent replays its slice in a loop, so
    even a short slice gives a steady accuracy signal; the trainer splits by class with its
    own seed, so most of these are the lab's own data). The last ``n_shifted`` devices
    split *all* digits between them, rotated: no version before v4 saw a rotated digit,
    and a slice of several hundred images means that what a device captures in the loop's
    first half minute, and what it replays after v4 arrives, are mostly different images
    (v4's live accuracy is not its training accuracy).
    """
    x, y = load_digits_raw()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    held = order[int(len(order) * 0.7) :]
    n_clean = len(devices) - n_shifted
    out.mkdir(parents=True, exist_ok=True)
    streams = []
    for i, dev in enumerate(devices):
        shifted = i >= n_clean
        idx = order[i - n_clean :: n_shifted] if shifted else held[i :: max(1, n_clean)]
        shift = SHIFTS[(i - n_clean) % len(SHIFTS)] if shifted else None
        xs = shift_stream(x[idx], shift, rng)
        path = out / f"{dev}.npz"
        np.savez(path, x=xs, y=np.array([str(v) for v in y[idx]]))
        streams.append(DeviceStream(dev, path, shift))
    return streams


def make_bad_dataset(out: Path, seed: int = 0) -> Path:
    """digits with labels shuffled: trains to chance accuracy, exports and signs fine
    (8-bit pixels, so it reads the same 0..255 raw range as the good versions)."""
    x, y = load_digits_raw()
    rng = np.random.default_rng(seed + 1)
    path = out / "digits-shuffled.npz"
    out.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x[..., None].astype(np.uint8), y=rng.permutation(y))
    return path
