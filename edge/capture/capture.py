"""The device's capture: the serving layer's sample hook, its bounds, its store and upload.

:meth:`Capture.offer` runs on the inference thread after every prediction while capture
is on (the agent unhooks it while off, so an off policy costs nothing): it decides from
the prediction alone, applies the rate limit and, only for an input it keeps, asks for the
model-domain input and queues it. Encoding (PNG, .npy) and the durable write happen on the
capture thread, never on the caller's; when that thread falls behind, further samples are
skipped and counted (``busy``) rather than delaying inference.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.capture.encode import sample_input
from edge.capture.policy import CapturePolicy
from edge.capture.store import SampleStore
from edge.capture.uploader import Endpoint, Uploader
from edge.contract import Sample
from edge.errors import ContractError, StorageError

if TYPE_CHECKING:
    from edge.runtime import Prediction
    from edge.serving import LoadedModel

log = logging.getLogger("edgekit.capture")

QUEUE_SIZE = 64  # samples waiting for the capture thread
RATE_WINDOW_S = 60.0


@dataclass(frozen=True)
class _Kept:
    """One input the policy kept, on its way to the store."""

    id: str
    captured_at: float
    reason: str
    model_name: str
    model_version: int
    preprocessing: dict[str, Any]
    x: np.ndarray
    label: str
    index: int | None
    scores: tuple[float, ...] | None
    known_label: str | None
    shadow_version: int | None = None
    shadow_label: str | None = None


class Capture:
    """Keeps the inputs the policy asks for, within its bounds, and uploads them."""

    def __init__(
        self,
        path: Path,
        policy: CapturePolicy,
        device: str,
        *,
        endpoint: Endpoint = lambda: None,
        drifting: Callable[[], bool] = lambda: False,
        fsync: bool = True,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.store = SampleStore(path, policy.max_bytes, fsync=fsync)
        self.uploader = Uploader(
            self.store, device, endpoint,
            batch=lambda: self.policy.upload_batch, interval=lambda: self.policy.upload_interval,
        )  # fmt: skip
        self.drifting = drifting
        self.counters = {"rate_limited": 0, "busy": 0, "errors": 0}
        self._rng = rng or random.Random()
        self._clock = clock
        self._lock = threading.Lock()
        self._times: deque[float] = deque()
        # inputs just kept, as serving handed them over: a shadow disagreement on one of
        # them is not kept a second time
        self._recent: deque[np.ndarray] = deque(maxlen=16)
        self._queue: queue.Queue[_Kept | None] = queue.Queue(QUEUE_SIZE)
        self._thread: threading.Thread | None = None
        self._last_error_log = -RATE_WINDOW_S

    # -- settings ------------------------------------------------------------------------

    def configure(self, policy: CapturePolicy) -> None:
        """A new policy (a config command): budget and upload settings apply at once."""
        self.policy = policy
        self.store.set_budget(policy.max_bytes)
        self.uploader.wake()

    def request(self, n: int) -> None:
        """Keep the next ``n`` inputs whatever the reason (while capture is on); persisted,
        so a restart does not forget what the operator asked for."""
        with self._lock:
            self.store.requested = max(0, n)

    # -- the serving hook ----------------------------------------------------------------

    def offer(
        self,
        model: LoadedModel,
        prediction: Prediction,
        label: Any,
        model_input: Callable[[], np.ndarray],
    ) -> str | None:
        """One served prediction; returns the reason it was kept, or None."""
        policy = self.policy
        if not policy.enabled:
            return None
        known = _label_name(label, model.manifest.labels)
        scores = prediction.scores
        with self._lock:
            requested = self.store.requested > 0
        reason = policy.reason(
            confidence=scores[prediction.index] if scores else None,
            out_of_range=bool(prediction.warnings),
            drifting=policy.drift and self._drifting(),
            wrong_label=known is not None and known != prediction.label,
            requested=requested,
            draw=self._rng.random() if policy.random > 0 else 1.0,
        )
        if reason is None or not self._admit(reason == "requested"):
            return None
        x = model_input()
        kept = _Kept(
            id=uuid.uuid4().hex, captured_at=time.time(), reason=reason,
            model_name=model.manifest.name, model_version=model.manifest.version,
            preprocessing=dict(model.manifest.preprocessing or {}),
            x=np.array(x, dtype=np.float32, copy=True),
            label=prediction.label, index=prediction.index,
            scores=tuple(float(s) for s in scores) if scores else None, known_label=known,
        )  # fmt: skip
        self._recent.append(x)
        return reason if self._enqueue(kept) else None

    def offer_disagreement(
        self,
        model: LoadedModel,
        candidate: LoadedModel,
        model_input: np.ndarray,
        served_index: int,
        candidate_scores: list[float],
    ) -> str | None:
        """A shadow candidate disagreed with the served model on ``model_input``."""
        policy = self.policy
        if policy.reason(confidence=None, shadow_disagrees=True) is None:
            return None
        if any(x is model_input for x in self._recent) or not self._admit(False):
            return None
        labels = model.manifest.labels
        c_index = max(range(len(candidate_scores)), key=candidate_scores.__getitem__)
        c_labels = candidate.manifest.labels
        kept = _Kept(
            id=uuid.uuid4().hex, captured_at=time.time(), reason="shadow_disagreement",
            model_name=model.manifest.name, model_version=model.manifest.version,
            preprocessing=dict(model.manifest.preprocessing or {}),
            x=np.array(model_input, dtype=np.float32, copy=True),
            label=labels[served_index] if served_index < len(labels) else str(served_index),
            index=served_index, scores=None, known_label=None,
            shadow_version=candidate.manifest.version,
            shadow_label=c_labels[c_index] if c_index < len(c_labels) else str(c_index),
        )  # fmt: skip
        return "shadow_disagreement" if self._enqueue(kept) else None

    def _drifting(self) -> bool:
        try:
            return bool(self.drifting())
        except Exception:
            return False

    def _admit(self, requested: bool) -> bool:
        """The rate limit: at most ``max_per_minute`` samples in any 60 s."""
        now = self._clock()
        with self._lock:
            while self._times and now - self._times[0] >= RATE_WINDOW_S:
                self._times.popleft()
            if len(self._times) >= self.policy.max_per_minute:
                self.counters["rate_limited"] += 1
                return False
            self._times.append(now)
            if requested:
                self.store.requested = max(0, self.store.requested - 1)
        return True

    def _enqueue(self, kept: _Kept) -> bool:
        try:
            self._queue.put_nowait(kept)
        except queue.Full:
            with self._lock:
                self.counters["busy"] += 1
            return False
        if self._thread is None:  # not started (tests, one-shot use): write right here
            self._drain()
        return True

    # -- the capture thread --------------------------------------------------------------

    def start(self) -> None:
        """Start the capture thread and the uploader."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
            self._thread.start()
        self.uploader.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every queued sample is in the store; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._queue.all_tasks_done.wait(left)
        return True

    def close(self) -> None:
        """Write what is queued, stop the threads, release the store."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None
        self.uploader.stop()
        self.store.close()

    def _run(self) -> None:
        while (kept := self._queue.get()) is not None:
            try:
                self._write(kept)
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _drain(self) -> None:
        while True:
            try:
                kept = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                if kept is not None:
                    self._write(kept)
            finally:
                self._queue.task_done()

    def _write(self, kept: _Kept) -> None:
        try:
            sample = _sample(kept)
            self.store.put(sample)
        except (ContractError, StorageError, ValueError, OSError) as exc:
            with self._lock:
                self.counters["errors"] += 1
            now = time.monotonic()
            if now - self._last_error_log >= RATE_WINDOW_S:  # a line a minute, not a flood
                self._last_error_log = now
                log.error("captured sample not kept: %s", exc)
            return
        self.uploader.wake()

    # -- status --------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """The counters for telemetry, /metrics and the local API."""
        with self._lock:
            run = dict(self.counters)
        return {
            "enabled": self.policy.enabled,
            **self.store.stats(),
            **run,
            "upload_error": self.uploader.last_error,
        }


def _label_name(label: Any, labels: list[str]) -> str | None:
    """A true label as the model names it (an index into its labels, or the name)."""
    if label is None or isinstance(label, bool):
        return None
    if isinstance(label, (int, np.integer)):
        i = int(label)
        return labels[i] if 0 <= i < len(labels) else None
    return str(label)


def _sample(kept: _Kept) -> Sample:
    """The wire sample, checked against the contract (what the hub will accept)."""
    sample = Sample(
        id=kept.id, captured_at=kept.captured_at, reason=kept.reason,
        model_name=kept.model_name, model_version=kept.model_version,
        label=kept.label, index=kept.index, scores=kept.scores, known_label=kept.known_label,
        shadow_version=kept.shadow_version, shadow_label=kept.shadow_label,
        input=sample_input(kept.x, kept.preprocessing),
    )  # fmt: skip
    return Sample.from_dict(sample.to_dict())
