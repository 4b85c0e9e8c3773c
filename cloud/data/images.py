"""Image-folder loading (one sub-folder per class) and the shared Pillow resize helper.

Images are decoded the same way the device decodes an image file (interfaces.md):
Pillow -> RGB/L -> bilinear resize to the model size -> uint8 pixels 0..255, so training
and inference see identically prepared pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from cloud.data.dataset import Dataset
from edge.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
DEFAULT_IMAGE_SIZE = 32
DEFAULT_MAX_BAD_FRACTION = 0.10


def _decode(path: Path, size: int) -> tuple[np.ndarray, bool]:
    """``(uint8 [size, size, 3], is_gray)``; raises whatever Pillow raises on a bad file."""
    with Image.open(path) as img:
        img.load()
        gray = img.mode in GRAY_MODES
        rgb = img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8), gray


def load_image_folder(
    root: Path, size: int = DEFAULT_IMAGE_SIZE, max_bad_fraction: float = DEFAULT_MAX_BAD_FRACTION
) -> Dataset:
    """Load ``root/<class>/*.png|jpg|jpeg``; broken files are skipped and counted.

    The model is grayscale when every readable image is grayscale, RGB otherwise. Too many
    unreadable files (more than ``max_bad_fraction``) mean something is wrong with the
    dataset as a whole, so the load is refused rather than silently training on a remnant.
    """
    if size < 1:
        raise DataError(f"image size must be positive, got {size}")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{root}: no class sub-folders (expected {root}/<class>/<image files>)")
    files: list[tuple[Path, int]] = []
    for ci, d in enumerate(class_dirs):
        for f in sorted(d.iterdir()):
            if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_SUFFIXES:
                files.append((f, ci))
    if not files:
        raise DataError(f"{root}: no PNG or JPEG files in the class sub-folders")
    pixels: list[np.ndarray] = []
    ys: list[int] = []
    skipped: list[str] = []
    all_gray = True
    for f, ci in files:
        try:
            arr, gray = _decode(f, size)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
            skipped.append(str(f.relative_to(root)))
            continue
        pixels.append(arr)
        ys.append(ci)
        all_gray = all_gray and gray
    bad = len(skipped) / len(files)
    if bad > max_bad_fraction:
        raise DataError(
            f"{root}: {len(skipped)} of {len(files)} images unreadable ({bad:.0%}, limit "
            f"{max_bad_fraction:.0%}), e.g. {skipped[0]!r}"
        )
    x = np.stack(pixels)
    if all_gray:
        x = x[..., :1]
    return Dataset(
        x=x.astype(np.float32),
        y=np.asarray(ys, dtype=np.int64),
        labels=[d.name for d in class_dirs],
        kind="image",
        source=str(root),
        raw_range=(0.0, 255.0),
        color="grayscale" if all_gray else "rgb",
        skipped=skipped,
    )


def resize_images(x: np.ndarray, size: int, channels: int) -> np.ndarray:
    """Resize raw ``[N, H, W, C]`` images to ``[N, size, size, channels]`` (bilinear, Pillow).

    Works on float values (Pillow mode ``F``, one channel at a time) so raw ranges other
    than 0..255 survive unchanged; grayscale is replicated to 3 channels when asked.
    """
    n, h, w, c = x.shape
    if c not in (1, 3) or channels not in (1, 3):
        raise DataError(f"images must have 1 or 3 channels, got {c} -> {channels}")
    if c == 3 and channels == 1:
        raise DataError("cannot turn RGB images into a 1-channel model input")
    if (h, w) == (size, size):
        out = x.astype(np.float32)
    else:
        out = np.empty((n, size, size, c), dtype=np.float32)
        for i in range(n):
            for k in range(c):
                img = Image.fromarray(np.ascontiguousarray(x[i, :, :, k], dtype=np.float32))
                out[i, :, :, k] = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))
    if channels == 3 and c == 1:
        out = np.repeat(out, 3, axis=-1)
    return out
