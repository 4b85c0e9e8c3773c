"""Helpers for bundle tests: a small signed bundle with fake model bytes, and re-packing
an archive with hand-made (possibly hostile) members."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from cloud.bundle import ArtifactSource, GoldenSet, build_bundle
from cloud.keys import generate_keypair
from edge.contract import TensorSpec

CREATED = "2026-01-02T03:04:05Z"


def make_keys(root: Path, sub: str = "keys") -> tuple[Path, Path]:
    return generate_keypair(root / sub)


def make_bundle(root: Path, priv: Path, *, version: int = 1, name: str = "demo") -> Path:
    """A signed bundle with two fake model files, a golden set, reference and a card."""
    models = root / "src"
    models.mkdir(exist_ok=True)
    (models / "m.tflite").write_bytes(bytes(range(256)) * 4)
    (models / "m.xml").write_bytes(b"<net/>")
    (models / "m.bin").write_bytes(b"\x00" * 64)
    out = root / f"{name}-v{version}.ekb"
    build_bundle(
        out,
        name=name,
        version=version,
        labels=["a", "b"],
        inputs=[TensorSpec("input", [1, 4], "float32")],
        outputs=[TensorSpec("scores", [1, 2], "float32")],
        preprocessing={"kind": "none"},
        artifacts=[
            ArtifactSource(
                models / "m.tflite", "litert", "fp32", {"accuracy": 0.9, "latency_ms": 1.0}
            ),
            ArtifactSource(
                models / "m.xml",
                "openvino",
                "fp32",
                {"accuracy": None, "latency_ms": 2.0},
                companions=[models / "m.bin"],
            ),
        ],
        private_key=priv,
        golden=GoldenSet(np.zeros((2, 4)), np.full((2, 2), 0.5)),
        reference={"schema": "edgekit.reference/1", "n": 0},
        files={"model_card.md": b"# card\n", "charts/x.png": b"\x89PNG fake"},
        lineage={"seed": 1},
        created=CREATED,
    )
    return out


def read_members(path: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    out = []
    with tarfile.open(path, "r:gz") as tar:
        for m in tar.getmembers():
            f = tar.extractfile(m) if m.isfile() else None
            out.append((m, f.read() if f else None))
    return out


def write_members(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    path.write_bytes(gzip.compress(buf.getvalue()))
    return path


def file_info(name: str, **attrs: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    for k, v in attrs.items():
        setattr(info, k, v)
    return info


def replace_member(src: Path, dst: Path, name: str, data: bytes) -> Path:
    members = [(m, data if m.name == name else d) for m, d in read_members(src)]
    return write_members(dst, members)


def edit_manifest(src: Path, dst: Path, change: Any) -> Path:
    members = read_members(src)
    out = []
    for m, d in members:
        if m.name == "manifest.json" and d is not None:
            obj = json.loads(d)
            change(obj)
            d = json.dumps(obj).encode()
        out.append((m, d))
    return write_members(dst, out)
