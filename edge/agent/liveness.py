"""Is the agent still alive inside? The answer the systemd watchdog ping depends on.

A running agent is a set of long-lived worker threads (installer, telemetry, outbox
drainer, MQTT network loop and dispatcher, inference watchers, local HTTP server). One that
dies of an uncaught exception leaves a process that looks up but no longer installs,
reports or answers. :class:`Liveness` remembers which of them ran once the agent was
ready and reports the ones gone since, by name, so a thread the agent replaces on purpose
(a new inference worker for a stuck one) still counts. Short-lived threads (replay,
shadow runs, HTTP requests) are not watched: they may end normally.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable

# The agent's long-lived threads, by exact name and by name prefix (see each component's
# threading.Thread; the MQTT ones carry the client id).
WORKERS = frozenset(
    {"installer", "telemetry", "outbox-drain", "inference-watchdog", "http",
     "mqtt-inference", "mqtt-inference-watch"}
)  # fmt: skip
WORKER_PREFIXES = ("mqtt-dispatch-", "paho-mqtt-client-")


def worker_key(name: str) -> str | None:
    """The name a worker thread is watched under, None for other threads. Replacements
    (``mqtt-inference-2`` for a stuck ``mqtt-inference``) count as the same worker."""
    if re.fullmatch(r"mqtt-inference-\d+", name):
        return "mqtt-inference"
    if name in WORKERS or name.startswith(WORKER_PREFIXES):
        return name
    return None


class Liveness:
    """Snapshot of the worker threads at :meth:`arm`; :meth:`problems` names those gone."""

    def __init__(self, threads: Callable[[], Iterable[threading.Thread]] | None = None) -> None:
        self._threads = threads or threading.enumerate
        self.watched: frozenset[str] = frozenset()

    def _alive(self) -> set[str]:
        out: set[str] = set()
        for thread in self._threads():
            key = worker_key(thread.name)
            if key is not None and thread.is_alive():
                out.add(key)
        return out

    def arm(self) -> frozenset[str]:
        """Watch the worker threads running now (call once the agent is serving)."""
        self.watched = frozenset(self._alive())
        return self.watched

    def problems(self) -> list[str]:
        """Names of watched threads no longer running, sorted; empty when healthy."""
        return sorted(self.watched - self._alive())
