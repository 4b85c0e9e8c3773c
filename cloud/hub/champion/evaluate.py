"""Score labeled field samples with a registered bundle, in the hub process.

The hub runs the bundle's LiteRT or ONNX Runtime variant through the same
``edge.runtime.Predictor`` the agents use (no TensorFlow here): fp32 first, as the
reference of what the model can do, then int8. One interpreter thread, so a check never
takes the hub's cores from its requests.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import extract_bundle
from edge.errors import BackendError, EdgekitError, InputError, RuntimeMissingError
from edge.runtime import ImageBytes, Predictor

PREFERRED = (
    ("litert", "fp32"),
    ("onnxruntime", "fp32"),
    ("litert", "int8"),
    ("onnxruntime", "int8"),
)


@dataclass(frozen=True)
class FieldSample:
    """A labeled field sample as a bundle takes it: ``raw`` is PNG bytes
    (:class:`ImageBytes`), an array, or a ``{feature: value}`` row."""

    id: str
    device: str
    label: str
    raw: Any


def raw_input(kind: str, data: bytes | None, features: dict[str, Any] | None) -> Any:
    """The model input of a stored sample (``kind`` image | array | tabular)."""
    if kind == "image":
        return ImageBytes(data or b"", "sample.png")
    if kind == "array":
        try:
            return np.load(io.BytesIO(data or b""), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError("decode", f"stored sample is not a readable .npy: {exc}") from exc
    if kind == "tabular":
        return dict(features or {})
    raise InputError("decode", f"unknown sample kind {kind!r}")


@contextmanager
def opened(bundle: Path, trusted_key: Path | None) -> Iterator[Predictor]:
    """The bundle's preferred runnable variant, extracted to a temporary directory."""
    with tempfile.TemporaryDirectory(prefix="edgekit-champion-") as tmp:
        manifest = extract_bundle(bundle, Path(tmp) / "bundle", trusted_key)
        have = {(a.runtime, a.precision) for a in manifest.artifacts}
        missing: list[str] = []
        for runtime, precision in PREFERRED:
            if (runtime, precision) not in have:
                continue
            try:
                predictor = Predictor.open(
                    Path(tmp) / "bundle", manifest, runtime, precision, threads=1,
                    input_guard="off",
                )  # fmt: skip
            except RuntimeMissingError as exc:
                missing.append(f"{runtime}-{precision}: {exc}")
                continue
            try:
                yield predictor
            finally:
                predictor.close()
            return
        targets = ", ".join(a.target for a in manifest.artifacts)
        why = f" ({'; '.join(missing)})" if missing else ""
        raise BackendError(
            f"{manifest.name} v{manifest.version} has no LiteRT or ONNX variant this hub "
            f"can run (it has: {targets}){why}"
        )


def answers(predictor: Predictor, samples: Sequence[FieldSample]) -> list[str | None]:
    """The predicted label per sample; None where the model refuses the input (a sample
    of another shape, a missing feature): such samples are left out of the comparison."""
    out: list[str | None] = []
    for s in samples:
        try:
            out.append(predictor.predict(s.raw).label)
        except EdgekitError:
            out.append(None)
    return out


def variant_name(predictor: Predictor) -> str:
    return predictor.artifact.target
