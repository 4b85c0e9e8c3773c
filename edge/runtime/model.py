"""The public Python API: a verified bundle's model, loaded on one runtime.

::

    from edge import load_model

    with load_model("digits.ekb", "edgekit.pub") as model:
        model.predict(image)                 # a raw input, validated and prepared as the agent does
        model.predict_batch([a, b, c])       # several raw inputs, one runtime call
        model.infer(batch)                   # model-domain float32 in, float32 scores out
        for p in model.stream(frames, batch=8):  # throughput mode, order kept
            ...

:func:`load_model` verifies the bundle (every file's sha256, and the Ed25519 signature
with ``trusted_key``) before anything is loaded; with ``trusted_key=None`` only the hashes
are checked, and a warning says so (as ``edgekit predict`` without ``--key`` does).
:class:`Model` is also what ``edgekit predict``, the agent and the self-test load
(``Model.open`` on a directory someone has verified already); ``Predictor`` is its old name.

``Model.infer`` is the backend's own ``infer`` (bound once at load): nothing is added on
top of the runtime call, so it is the floor ``edgekit bench`` measures against.
"""

from __future__ import annotations

import itertools
import logging
import math
import tempfile
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import Trust, entry_path, extract_bundle, load_public_key, verify_directory
from edge.contract import Artifact, Manifest
from edge.errors import BackendError, BundleError, ConfigError, ContractError, InputError
from edge.runtime.backends import base
from edge.runtime.guard import DEFAULT_GUARD_MARGIN, DEFAULT_GUARD_MODE, FeatureRanges, RangeGuard
from edge.runtime.inputs import Preparer
from edge.runtime.prediction import Prediction, choose_artifact

__all__ = ["MAX_STREAM_BATCH", "Model", "UnverifiedBundleWarning", "Variant", "load_model"]
log = logging.getLogger(__name__)

MAX_STREAM_BATCH = 256  # frames per stream batch (each batch is one runtime call)


class UnverifiedBundleWarning(UserWarning):
    """A bundle was loaded without checking its signature (``trusted_key=None``)."""


@dataclass(frozen=True)
class Variant:
    """What is loaded: the artifact's runtime and precision, the threads the runtime really
    uses (None: the runtime's own choice, not reported), and the export recipe, if any."""

    runtime: str
    precision: str
    threads: int | None
    target: str
    recipe: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_model(
    bundle: str | Path,
    trusted_key: str | Path | Trust | None,
    *,
    runtime: str | None = None,
    precision: str | None = None,
    threads: int | None = None,
    input_guard: str = DEFAULT_GUARD_MODE,
    input_guard_margin: float = DEFAULT_GUARD_MARGIN,
) -> Model:
    """Verify ``bundle`` (a ``.ekb`` file or an extracted directory) and load one variant.

    The variant is the pinned ``runtime``/``precision`` or else the fastest the bundle
    measured among the runtimes installed here; ``threads`` fixes the runtime's thread
    count. A ``.ekb`` is extracted to a temporary directory that :meth:`Model.close`
    removes. Raises BundleError (tampered, wrong key), ConfigError (bad arguments),
    RuntimeMissingError or BackendError; nothing is loaded unless the bundle verifies.
    """
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int)):
        raise ConfigError(f"threads must be a whole number, got {threads!r}")
    if threads is not None and threads < 1:
        raise ConfigError(f"threads must be at least 1, got {threads}")
    RangeGuard.check_settings(input_guard, input_guard_margin)
    path = Path(bundle)
    if not path.exists():
        raise BundleError(f"bundle {path} does not exist")
    key = _trust(trusted_key, path)
    workdir: tempfile.TemporaryDirectory[str] | None = None
    if path.is_dir():
        bundle_dir, manifest = path, verify_directory(path, key)
    else:
        workdir = tempfile.TemporaryDirectory(prefix="edgekit-model-")
        bundle_dir = Path(workdir.name) / "bundle"
        try:
            manifest = extract_bundle(path, bundle_dir, key)
        except BaseException:
            workdir.cleanup()
            raise
    try:
        model = Model.open(
            bundle_dir,
            manifest,
            runtime,
            precision,
            threads=threads,
            input_guard=input_guard,
            input_guard_margin=input_guard_margin,
        )
    except BaseException:
        if workdir is not None:
            workdir.cleanup()
        raise
    model._workdir = workdir
    return model


def _trust(trusted_key: str | Path | Trust | None, bundle: Path) -> Trust | None:
    """The loaded key (a missing or unreadable key file is an error, never "unsigned")."""
    if trusted_key is None:
        message = (
            f"no trusted key given: the signature of {bundle.name} is NOT checked (hashes are)"
        )
        log.warning(message)
        warnings.warn(message, UnverifiedBundleWarning, stacklevel=3)
        return None
    if isinstance(trusted_key, (str, Path)):
        return load_public_key(Path(trusted_key))
    return trusted_key


class Model:
    """A bundle variant loaded on its runtime; from :func:`load_model`, or :meth:`open` on
    an extracted directory already verified. Not for use from two threads at once
    (runtimes are not all thread-safe); the agent serialises calls per model."""

    infer: Callable[[np.ndarray], np.ndarray]
    """Scores (float32, batch first) for a model-domain float32 batch of any size: the
    backend's own ``infer``, so a C-contiguous float32 batch is used as it is."""

    def __init__(
        self,
        bundle_dir: Path,
        manifest: Manifest,
        artifact: Artifact,
        backend: base.Backend,
        *,
        input_guard: str = DEFAULT_GUARD_MODE,
        input_guard_margin: float = DEFAULT_GUARD_MARGIN,
    ) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.manifest = manifest
        self.artifact = artifact
        self.backend = backend
        n_out = manifest.outputs[0].shape[-1] if manifest.outputs[0].shape else 0
        self.labels = list(manifest.labels) or [f"class_{i}" for i in range(max(n_out, 0))]
        self.guard = self._load_guard(input_guard, input_guard_margin)
        self.variant = Variant(
            artifact.runtime,
            artifact.precision,
            _threads_of(backend),
            artifact.target,
            _recipe_of(artifact),
        )
        self.prepare = Preparer(manifest)
        self.infer = backend.infer
        # the backend's own fill call when its scores are [1, classes] already (LiteRT's
        # bound batch-1 call): nothing on top of it on the agent's in-process path
        self.fill_and_infer = self._fill_and_infer
        fill = getattr(backend, "fill_and_infer", None)
        if fill is not None and len(manifest.outputs[0].shape) == 2:
            self.fill_and_infer = fill
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        sample = tuple(manifest.inputs[0].shape[1:])
        self._sample: tuple[int, ...] | None = sample if all(s > 0 for s in sample) else None

    def _load_guard(self, mode: str, margin: float) -> RangeGuard | None:
        """The range guard of a tabular model (None when off, or without ranges); a bundle
        whose reference does not fit is served unguarded, with a log line saying so."""
        RangeGuard.check_settings(mode, margin)
        if mode == "off":
            return None
        try:
            ranges = FeatureRanges.for_bundle(self.bundle_dir, self.manifest)
        except ContractError as exc:
            log.warning("input range guard off for %s: %s", self.manifest.name, exc)
            return None
        return RangeGuard(ranges, mode, margin) if ranges is not None else None

    @classmethod
    def open(
        cls,
        bundle_dir: Path,
        manifest: Manifest,
        runtime: str | None = None,
        precision: str | None = None,
        *,
        threads: int | None = None,
        available: dict[str, dict[str, Any]] | None = None,
        input_guard: str = DEFAULT_GUARD_MODE,
        input_guard_margin: float = DEFAULT_GUARD_MARGIN,
    ) -> Model:
        """Load the chosen variant (edge/runtime/prediction.py) of an extracted bundle the
        caller has verified; ``input_guard`` (warn, refuse, off) applies to predictions."""
        RangeGuard.check_settings(input_guard, input_guard_margin)  # before loading a model
        artifact = choose_artifact(manifest, runtime, precision, available)
        backend = base.create(artifact.runtime, threads=threads)
        backend.load(entry_path(bundle_dir, artifact.file), artifact)
        return cls(
            Path(bundle_dir),
            manifest,
            artifact,
            backend,
            input_guard=input_guard,
            input_guard_margin=input_guard_margin,
        )

    # ------------------------------------------------------------------ predictions

    def predict(self, raw: Any) -> Prediction:
        """The prediction for one raw input (edge/runtime/inputs.py says what it takes);
        ``latency_ms`` covers preparation and inference. InputError for a bad input."""
        start = time.perf_counter()
        x = self.prepare(raw)
        if x.shape[0] != 1:
            raise InputError("shape", f"expected one sample, got a batch of {x.shape[0]}")
        return self._answer(x, start)[0]

    def predict_batch(self, raws: Iterable[Any]) -> list[Prediction]:
        """Predictions for several raw inputs (each one sample, as :meth:`predict` takes;
        an array's first axis counts as the samples), in one runtime call; an InputError
        names the sample at fault. ``latency_ms`` is the call's time per sample."""
        start = time.perf_counter()
        return self._answer(self._prepare_batch(_samples(raws), 0), start)

    def stream(self, frames: Iterable[Any], *, batch: int = 8) -> Iterator[Prediction]:
        """Predictions for a stream of raw inputs (camera frames), in order, run ``batch``
        at a time: higher throughput than one call per frame, at up to ``batch`` frames of
        delay. A backend with ``infer_stream`` (OpenVINO's async queue) overlaps the
        batches. A bad frame raises InputError naming its position in the stream."""
        if (
            isinstance(batch, bool)
            or not isinstance(batch, int)
            or not 1 <= batch <= MAX_STREAM_BATCH
        ):
            raise ConfigError(
                f"stream batch must be a whole number 1..{MAX_STREAM_BATCH}, got {batch!r}"
            )
        return self._stream(_chunks(iter(frames), batch))

    def _stream(self, chunks: Iterator[tuple[int, list[Any]]]) -> Iterator[Prediction]:
        streamer = getattr(self.backend, "infer_stream", None)
        if streamer is None:
            for first, items in chunks:
                start = time.perf_counter()
                yield from self._answer(self._prepare_batch(items, first), start)
            return
        in_flight: deque[tuple[np.ndarray, list[str | None], float]] = deque()  # oldest first

        def batches() -> Iterator[np.ndarray]:
            for first, items in chunks:
                start = time.perf_counter()
                x = self._prepare_batch(items, first)
                in_flight.append((x, self._guarded(x), start))
                yield x

        for scores in streamer(batches()):
            x, warned, start = in_flight.popleft()
            yield from self._predictions(self._checked(scores, x.shape[0]), warned, start)

    def _prepare_batch(self, items: list[Any], first: int) -> np.ndarray:
        """The model-domain batch for raw samples ``items`` (the first is sample ``first``
        of the caller's sequence): each through the fast path where it fits, written into
        one preallocated batch when the model's sample shape is static."""
        if not items:
            raise InputError("shape", "input batch is empty")
        prepare = self.prepare
        out = np.empty((len(items), *self._sample), np.float32) if self._sample else None
        parts: list[np.ndarray] = []
        for i, raw in enumerate(items):
            if out is not None and prepare.fits(raw) and prepare.fill(raw, out[i]):
                continue
            try:
                x = prepare(raw)
                if x.shape[0] != 1:
                    raise InputError("shape", f"expected one sample, got a batch of {x.shape[0]}")
            except InputError as exc:
                raise InputError(exc.code, f"sample {first + i}: {exc}") from exc
            if out is not None:
                out[i] = x[0]
            else:
                parts.append(x)
        return out if out is not None else np.concatenate(parts)

    def _answer(self, x: np.ndarray, start: float) -> list[Prediction]:
        """Predictions for a prepared batch: the range guard, one runtime call, labels."""
        warned = self._guarded(x)
        return self._predictions(self._checked(self.infer(x), x.shape[0]), warned, start)

    def _guarded(self, x: np.ndarray) -> list[str | None]:
        """Per sample, the range guard's warning (or None); ``refuse`` raises InputError
        code ``range`` naming the sample and the feature."""
        guard = self.guard
        flagged = guard.outside(x) if guard is not None else None
        if guard is None or flagged is None:
            return [None] * x.shape[0]
        if guard.refuses:
            raise InputError("range", guard.describe(x, flagged))
        return [
            guard.describe(x[i : i + 1], flagged[i : i + 1]) if flagged[i].any() else None
            for i in range(x.shape[0])
        ]

    @staticmethod
    def _checked(scores: np.ndarray, n: int) -> np.ndarray:
        if scores.ndim != 2:
            scores = scores.reshape(scores.shape[0] if scores.ndim else 0, -1)
        if scores.shape[0] != n or scores.shape[1] < 1:
            raise BackendError(
                f"model returned scores of shape {list(scores.shape)} for {n} inputs"
            )
        return scores

    def _predictions(
        self, scores: np.ndarray, warned: list[str | None], start: float
    ) -> list[Prediction]:
        latency = round((time.perf_counter() - start) * 1000.0 / max(1, scores.shape[0]), 4)
        labels, out = self.labels, []
        for i, row in enumerate(scores.tolist()):  # plain Python on small rows: no numpy calls
            if not all(map(math.isfinite, row)):
                raise BackendError(f"model returned non-finite scores for sample {i}")
            idx = max(range(len(row)), key=row.__getitem__)  # the first maximum, as argmax
            label = labels[idx] if idx < len(labels) else f"class_{idx}"
            warning = warned[i]
            out.append(Prediction(label, idx, row, latency, (warning,) if warning else ()))
        return out

    # ------------------------------------------------------------------ serving support

    def infer_model_domain(self, x: np.ndarray) -> np.ndarray:
        """:meth:`infer` with the scores flattened to ``[batch, classes]``."""
        scores = self.infer(x)
        return scores if scores.ndim == 2 else scores.reshape(scores.shape[0], -1)

    @property
    def fillable(self) -> bool:
        """Whether the runtime can take a sample written straight into its input tensor
        (see :meth:`fill_and_infer`)."""
        return bool(getattr(self.backend, "fillable", False))

    fill_and_infer: Callable[[Callable[[np.ndarray], bool]], np.ndarray | None]
    """Scores ``[1, classes]`` for one sample that ``fill`` writes into the runtime's input
    tensor, saving a copy of the input; None when ``fill`` declined it (see
    :attr:`fillable`)."""

    def _fill_and_infer(self, fill: Callable[[np.ndarray], bool]) -> np.ndarray | None:
        """``fill_and_infer`` with the scores reshaped to ``[1, classes]``."""
        scores: np.ndarray | None = self.backend.fill_and_infer(fill)  # type: ignore[attr-defined]
        if scores is None:
            return None
        return scores.reshape(1, -1)

    def cancel(self) -> bool:
        """Interrupt the running inference from another thread (see Backend.cancel)."""
        return self.backend.cancel()

    def describe(self) -> dict[str, Any]:
        return {
            **self.backend.describe(),
            "precision": self.artifact.precision,
            "target": self.artifact.target,
            "threads": self.variant.threads,
            "recipe": self.variant.recipe,
        }

    def close(self) -> None:
        """Release the runtime (and the extracted copy :func:`load_model` made); later
        calls raise BackendError."""
        self.infer = _closed
        self.fill_and_infer = _closed
        self.backend.close()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Model {self.manifest.name} v{self.manifest.version} {self.variant.target}>"


def _closed(*_args: Any) -> np.ndarray:
    raise BackendError("the model is closed")


def _threads_of(backend: base.Backend) -> int | None:
    """The threads the runtime reports using (a backend that cannot tell: None)."""
    try:
        threads = backend.describe().get("threads")
    except Exception:  # describe() is informational; it must not stop a load
        return None
    return threads if isinstance(threads, int) and not isinstance(threads, bool) else None


def _recipe_of(artifact: Artifact) -> str | None:
    recipe = (artifact.metrics or {}).get("recipe")
    return recipe if isinstance(recipe, str) else None


def _samples(raws: Iterable[Any]) -> list[Any]:
    """The raw samples of a batch: a list or tuple as given, an array split on its first
    axis; a mapping or a string is one input, not a batch (say so)."""
    if isinstance(raws, np.ndarray):
        if raws.ndim == 0:
            raise InputError("shape", "a batch must be a list of inputs, got a single number")
        return list(raws)
    if isinstance(raws, (str, bytes, dict)) or not isinstance(raws, Iterable):
        raise InputError("shape", "a batch must be a list of inputs (one per sample)")
    return list(raws)


def _chunks(frames: Iterator[Any], size: int) -> Iterator[tuple[int, list[Any]]]:
    """``(index of the first, items)`` for consecutive chunks of ``size`` frames."""
    for first in itertools.count(0, size):
        items = list(itertools.islice(frames, size))
        if not items:
            return
        yield first, items
