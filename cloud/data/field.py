"""Field dataset exports: the folder ``edgekit hub dataset export`` writes and ``edgekit
train`` reads, described by ``edgekit-dataset.json`` (lineage travels with the data).

Formats by the samples' input kind: ``images`` (PNG files in one sub-folder per class,
the image-folder layout), ``npz`` (``data.npz``: ``x`` raw arrays, ``y`` label names,
``origin`` the device id or ``original``) and ``csv`` (``data.csv``: the features by name
plus the label column). ``merge_original`` adds the original training data in the same
format, so one ``edgekit train DIR`` trains on both and names both in its lineage.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cloud.data.dataset import Dataset
from cloud.data.fingerprint import fingerprint
from edge.errors import DataError

META_NAME = "edgekit-dataset.json"
SCHEMA = "edgekit.dataset/1"
DATA_FILES = {"images": ".", "npz": "data.npz", "csv": "data.csv"}
FORMAT_OF_KIND = {"image": "images", "array": "npz", "tabular": "csv"}
IMAGE_FILES = frozenset({".png", ".jpg", ".jpeg"})


@dataclass(frozen=True)
class FieldRecord:
    """One frozen sample to write: its input file (PNG / .npy) or features (tabular)."""

    id: str
    device: str
    label: str
    file: Path | None = None
    features: dict[str, Any] | None = None


def read_meta(folder: Path) -> dict[str, Any] | None:
    """``folder/edgekit-dataset.json`` checked, or None when the folder has none."""
    path = Path(folder) / META_NAME
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: not a readable dataset description ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        raise DataError(f"{path}: not an {SCHEMA} document")
    if meta.get("format") not in DATA_FILES or meta.get("data") != DATA_FILES[meta["format"]]:
        raise DataError(f"{path}: 'format' must be one of {', '.join(DATA_FILES)} with its file")
    if not isinstance(meta.get("name"), str) or not isinstance(meta.get("version"), int):
        raise DataError(f"{path}: needs the dataset's 'name' and 'version'")
    return meta


def write_meta(folder: Path, meta: dict[str, Any]) -> Path:
    path = Path(folder) / META_NAME
    path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def _npy(path: Path) -> np.ndarray:
    try:
        return np.load(io.BytesIO(path.read_bytes()), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path.name}: not a readable .npy array ({exc})") from exc


def _sample_shape(arrays: list[np.ndarray]) -> tuple[int, ...]:
    shapes = {a.shape[1:] if a.ndim >= 3 and a.shape[0] == 1 else a.shape for a in arrays}
    if len(shapes) != 1:
        raise DataError(f"the array samples have different shapes: {sorted(shapes)[:4]}")
    return shapes.pop()


def write_export(folder: Path, meta: dict[str, Any], records: list[FieldRecord]) -> Path:
    """Write ``records`` in ``meta['format']`` and the description; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fmt = meta["format"]
    if fmt == "images":
        for r in records:
            if r.file is None:
                raise DataError(f"sample {r.id} has no image file")
            (folder / r.label).mkdir(exist_ok=True)
            shutil.copyfile(r.file, folder / r.label / f"{r.id}.png")
    elif fmt == "npz":
        arrays = [_npy(r.file) for r in records if r.file is not None]
        if len(arrays) != len(records):
            raise DataError("an array sample has no .npy file")
        shape = _sample_shape(arrays) if arrays else ()
        x = np.stack([a.reshape(shape) for a in arrays]).astype(np.float32)
        np.savez(
            folder / DATA_FILES["npz"],
            x=x,
            y=np.array([r.label for r in records]),
            origin=np.array([r.device for r in records]),
        )
    else:
        names = list(dict.fromkeys(k for r in records for k in (r.features or {})))
        label = str(meta.get("label_column") or "label")
        if label in names:
            raise DataError(f"a feature is named {label!r}, the label column; pick another")
        with (folder / DATA_FILES["csv"]).open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow([*names, label])
            for r in records:
                feats = r.features or {}
                w.writerow([_cell(feats.get(n)) for n in names] + [r.label])
    write_meta(folder, meta)
    return folder


def _cell(value: Any) -> str:
    return "" if value is None else repr(float(value))


def _files_fingerprint(root: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(root).as_posix()}\t".encode())
        h.update(hashlib.sha256(f.read_bytes()).hexdigest().encode() + b"\n")
    return "sha256:" + h.hexdigest()


def merge_original(  # noqa: C901 - one pass per input kind, each short
    folder: Path, original: Dataset, original_path: Path | None
) -> dict[str, Any]:
    """Add the original training data to an export in ``folder``; returns the updated
    description (``merged``: its source, fingerprint and counts)."""
    meta = read_meta(folder)
    if meta is None:
        raise DataError(f"{folder}: no {META_NAME}; export the dataset first")
    fmt = meta["format"]
    labels = [original.labels[i] for i in original.y]
    if fmt == "images":
        if original_path is None or not original_path.is_dir():
            raise DataError("image samples merge with an image folder (class sub-folders)")
        n = 0
        for d in sorted(p for p in original_path.iterdir() if p.is_dir()):
            for f in sorted(d.iterdir()):
                if f.is_file() and f.suffix.lower() in IMAGE_FILES and not f.name.startswith("."):
                    (folder / d.name).mkdir(exist_ok=True)
                    shutil.copyfile(f, folder / d.name / f"original-{f.name}")
                    n += 1
        fp = _files_fingerprint(original_path)
    elif fmt == "npz":
        if original.kind != "image":
            raise DataError(f"array samples merge with image arrays, not {original.kind} data")
        with np.load(folder / DATA_FILES["npz"], allow_pickle=False) as data:
            x, y, origin = data["x"], data["y"], data["origin"]
        ox = original.x
        if x.shape[1:] != ox.shape[1:]:
            if x.size and x.shape[1:] == ox.shape[1:-1] and ox.shape[-1] == 1:
                x = x[..., None]
            elif x.size and ox.shape[1:] == x.shape[1:-1] and x.shape[-1] == 1:
                x = x[..., 0]
            elif x.size:
                raise DataError(
                    f"the field samples are {list(x.shape[1:])}, the original data "
                    f"{list(ox.shape[1:])}: they cannot be trained together"
                )
        np.savez(
            folder / DATA_FILES["npz"],
            x=np.concatenate([ox.astype(np.float32), x.reshape((-1, *ox.shape[1:]))]),
            y=np.concatenate([np.array(labels), y]),
            origin=np.concatenate([np.array(["original"] * len(ox)), origin]),
        )
        n, fp = len(ox), fingerprint(original)
    else:
        if original.kind != "tabular" or not original.feature_names:
            raise DataError("tabular samples merge with a CSV of the same features")
        n, fp = _merge_csv(folder, meta, original, labels), fingerprint(original)
    meta["merged"] = {
        "source": Path(original.source).name or original.source,
        "fingerprint": fp,
        "samples": n,
        "by_label": dict(sorted(Counter(labels).items())),
    }
    meta["samples"] = int(meta["counts"]["total"]) + n
    write_meta(folder, meta)
    return meta


def _merge_csv(folder: Path, meta: dict[str, Any], original: Dataset, labels: list[str]) -> int:
    path = folder / DATA_FILES["csv"]
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    label = str(meta.get("label_column") or "label")
    names = list(original.feature_names or [])
    unknown = sorted(set(header[:-1]) - set(names))
    if unknown:
        raise DataError(f"the field samples have features the original lacks: {unknown[:5]}")
    idx = {n: i for i, n in enumerate(header[:-1])}
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow([*names, label])
        for row, y in zip(original.x, labels, strict=True):
            w.writerow([repr(float(v)) for v in row] + [y])
        for row in body:
            w.writerow([row[idx[n]] if n in idx else "" for n in names] + [row[-1]])
    return len(original.x)


def lineage_versions(ds: Dataset, fp: str) -> list[dict[str, Any]]:
    """The dataset versions a training run used, for ``lineage.datasets`` and the card:
    the original data and, for a field export, the field version (by device and label)."""
    meta = ds.extra.get("field_dataset")
    if not isinstance(meta, dict):
        return [{
            "role": "original", "source": Path(ds.source).name or ds.source,
            "fingerprint": fp, "samples": len(ds.y),
        }]  # fmt: skip
    counts = meta.get("counts") or {}
    out: list[dict[str, Any]] = []
    merged = meta.get("merged")
    if isinstance(merged, dict):
        out.append({
            "role": "original", "source": merged.get("source"),
            "fingerprint": merged.get("fingerprint"), "samples": merged.get("samples"),
        })  # fmt: skip
    out.append({
        "role": "field", "name": meta["name"], "version": meta["version"],
        "fingerprint": meta.get("fingerprint"), "samples": counts.get("total"),
        "by_device": counts.get("by_device") or {}, "by_label": counts.get("by_label") or {},
    })  # fmt: skip
    return out


def kind_format(kind: str) -> str:
    try:
        return FORMAT_OF_KIND[kind]
    except KeyError:
        raise DataError(f"no export format for {kind!r} samples") from None
