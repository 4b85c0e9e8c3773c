"""Feed recorded inputs to the agent at a set rate, for simulation and the demo.

Sources (inputs are in the model's *raw* domain, as a sensor would send them):

* ``.npz`` with array ``x`` (samples) and optionally ``y`` (true labels: indices or names);
* ``.npy``: samples only;
* ``.csv``: a header row names the columns; a column called ``label`` (or ``y``) holds the
  true label, the others are features passed by name (tabular models reorder them);
  without a header every column is a feature;
* a folder of images (PNG, JPEG, ...): files directly inside have no label, files inside a
  sub-folder are labelled with the sub-folder's name (``digits/7/a.png`` → ``7``).

When labels are known, the agent computes live accuracy from them.
"""

from __future__ import annotations

import csv
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError, EdgekitError
from edge.runtime import IMAGE_SUFFIXES, ImageBytes

log = logging.getLogger(__name__)

LABEL_COLUMNS = ("label", "y")
MAX_IMAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Sample:
    inputs: Any
    label: Any = None  # int index, label name, or None


def load_samples(path: Path) -> list[Sample]:
    """Every sample of a replay source; ConfigError naming the problem."""
    if path.is_dir():
        return _images(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _npz(path)
    if suffix == ".npy":
        return [Sample(row) for row in _np_load(path)]
    if suffix == ".csv":
        return _csv(path)
    raise ConfigError(f"replay: {path.name}: use a .npz, .npy, .csv file or an image folder")


def _np_load(path: Path) -> Any:
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ConfigError(f"replay: {path.name} is not a readable numpy file: {exc}") from None


def _npz(path: Path) -> list[Sample]:
    with _np_load(path) as npz:
        if "x" not in npz.files:
            raise ConfigError(f"replay: {path.name} needs an array 'x' (has {npz.files})")
        x = npz["x"]
        y = npz["y"] if "y" in npz.files else None
    if y is not None and len(y) != len(x):
        raise ConfigError(f"replay: {path.name}: {len(x)} samples but {len(y)} labels")
    labels = [None] * len(x) if y is None else [_plain(v) for v in y]
    return [Sample(row, label) for row, label in zip(x, labels, strict=True)]


def _plain(value: Any) -> Any:
    item = value.item() if isinstance(value, np.generic) else value
    return item.decode() if isinstance(item, bytes) else item


def _csv(path: Path) -> list[Sample]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"replay: {path.name} is not a readable CSV: {exc}") from None
    if not rows:
        raise ConfigError(f"replay: {path.name} is empty")
    header = rows[0] if not _numeric(rows[0]) else None
    out: list[Sample] = []
    for n, row in enumerate(rows[1:] if header else rows, start=2 if header else 1):
        if header is not None and len(row) != len(header):
            raise ConfigError(
                f"replay: {path.name} line {n}: {len(row)} columns, expected {len(header)}"
            )
        try:
            if header is None:
                out.append(Sample([float(v) for v in row]))
                continue
            named = dict(zip(header, row, strict=True))
            label_key = next((k for k in LABEL_COLUMNS if k in named), None)
            text = named.pop(label_key) if label_key else None
            label: int | str | None = text
            if text is not None and text.lstrip("-").isdigit():
                label = int(text)
            out.append(Sample({k: float(v) for k, v in named.items()}, label))
        except ValueError as exc:
            raise ConfigError(f"replay: {path.name} line {n}: {exc}") from None
    return out


def _numeric(row: list[str]) -> bool:
    try:
        [float(v) for v in row]
    except ValueError:
        return False
    return True


def _images(folder: Path) -> list[Sample]:
    out: list[Sample] = []
    for file in sorted(folder.rglob("*")):
        if not file.is_file() or file.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        rel = file.relative_to(folder)
        label = rel.parts[0] if len(rel.parts) > 1 else None
        if file.stat().st_size > MAX_IMAGE_BYTES:
            log.warning("replay: skipping %s (too large)", rel)
            continue
        out.append(Sample(ImageBytes(file.read_bytes(), file.name), label))
    if not out:
        raise ConfigError(f"replay: no images in {folder}")
    return out


class ReplaySource:
    """Calls ``sink(inputs, label)`` for each sample, ``rate`` times per second.

    Runs in its own thread (:meth:`start`) or inline (:meth:`run`). A sink error is logged
    and counted (``errors``), never stops the replay: rejected inputs are part of the show.
    """

    def __init__(self, path: Path, rate: float, *, loop: bool = True) -> None:
        if rate <= 0:
            raise ConfigError(f"replay_rate: must be greater than 0, got {rate}")
        self.path = path
        self.rate = rate
        self.loop = loop
        self.samples = load_samples(path)
        self.sent = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __iter__(self) -> Iterator[Sample]:
        while True:
            yield from self.samples
            if not self.loop:
                return

    def run(self, sink: Callable[[Any, Any], Any], limit: int | None = None) -> int:
        """Feed samples until the end (or ``limit``, or :meth:`stop`); returns how many."""
        next_at = time.monotonic()
        for sample in self:
            if self._stop.is_set() or (limit is not None and self.sent >= limit):
                break
            try:
                sink(sample.inputs, sample.label)
            except EdgekitError as exc:
                self.errors += 1
                log.debug("replay sample refused: %s", exc)
            except Exception:
                self.errors += 1
                log.exception("replay sink failed")
            self.sent += 1
            next_at += 1.0 / self.rate  # read each time: a config command may change it
            delay = next_at - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
            else:
                next_at = time.monotonic()  # behind schedule: do not burst to catch up
        return self.sent

    def set_rate(self, rate: float) -> None:
        """Change the pace of a running replay (the ``replay_rate`` config key)."""
        if rate <= 0:
            raise ConfigError(f"replay_rate: must be greater than 0, got {rate}")
        self.rate = rate

    def start(self, sink: Callable[[Any, Any], Any]) -> None:
        self._thread = threading.Thread(target=self.run, args=(sink,), name="replay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
