"""The inference time limit: one watcher thread, and a deadline stamp per served model.

Every model runs one inference at a time (its lock, edge/serving/server.py), so each has
one :class:`Watch`, made once: arming a call stores its deadline in it (two attribute
stores, no object made, no lock, no thread woken). The watcher wakes every ``period()``
seconds and asks the runtime of every overdue call to stop (ONNX Runtime's terminate
flag, OpenVINO's cancel), again at each poll until the call ends: a cancel that landed
between two runs of one call (batches run in chunks) is not lost. ``disarm`` takes the
watch's lock, so it waits for a cancel in progress: a late cancel never reaches the next
call on the same model.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

IDLE = math.inf  # the deadline of a watch with no call in progress


class Cancellable(Protocol):
    def cancel(self) -> bool:
        """Ask the running inference to stop; False when the runtime cannot."""
        ...


class Watch:
    """The deadline of the one call in progress on ``target`` (:data:`IDLE` when none)."""

    __slots__ = ("__weakref__", "deadline", "lock", "overdue", "owner", "target")

    def __init__(self, owner: Watchdog, target: Cancellable) -> None:
        self.owner, self.target = owner, target
        self.deadline = IDLE
        self.overdue = False
        self.lock = threading.Lock()

    def arm(self, deadline: float) -> None:
        """A call starts, due by ``deadline`` (monotonic). The caller runs one call at a
        time per watch; the watcher reads ``deadline`` last, so ``overdue`` is reset first."""
        self.overdue = False
        self.deadline = deadline

    def disarm(self) -> bool:
        """The call ended: True when it was overdue (and cancelled, where possible)."""
        with self.lock:  # waits for a cancel in progress
            self.deadline = IDLE
            return self.overdue


class Watchdog:
    """The watcher thread and the watches it polls (held weakly: a watch goes with the
    model it belongs to)."""

    def __init__(self, period: Callable[[], float], name: str = "inference-watchdog") -> None:
        self._watches: weakref.WeakSet[Watch] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._period = period
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def watch(self, target: Cancellable) -> Watch:
        """A new watch of ``target``, polled from now on (keep a reference to it)."""
        w = Watch(self, target)
        with self._lock:
            self._watches.add(w)
        return w

    def stop(self) -> None:
        self._stopped.set()

    def check(self, now: float) -> int:
        """Ask the runtime of every call overdue at ``now`` to stop; returns how many became
        overdue now."""
        with self._lock:
            watches = list(self._watches)
        newly = 0
        for w in watches:
            deadline = w.deadline
            if deadline > now:
                continue
            with w.lock:
                if w.deadline != deadline:  # it ended (and maybe another began) meanwhile
                    continue
                first = not w.overdue
                w.overdue = True
                newly += first
                try:
                    stopped = w.target.cancel()
                except Exception:  # a failing cancel must not end the watchdog
                    if first:
                        log.exception("cancelling an overdue inference failed")
                    stopped = False
            if first and not stopped:
                log.error("an inference is past its time limit and its runtime cannot "
                          "interrupt it; later calls time out until it returns")  # fmt: skip
        return newly

    def _run(self) -> None:
        while not self._stopped.wait(self._period()):
            self.check(time.monotonic())
