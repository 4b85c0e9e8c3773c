"""The bridge's writer in a process of its own.

In one process, paho's receive loop (which also sends the PUBACKs the broker waits for
before it sends more) and the writer (JSON, SQL) took turns on one GIL, and the receive
loop waited up to a switch interval each time it woke. ``edgekit hub serve`` runs the
writer in a child process instead: the bridge ships each batch of raw messages over a
pipe and gets back the counters it changed; while the child writes, the next batch
gathers in the bridge (group commit, as with the thread).

The child is spawned (no thread state is forked), ignores Ctrl-C (the hub stops it) and
exits when the pipe closes, so it never outlives the hub. A child that dies is started
again and its batch sent once more: at least once, like MQTT QoS 1 (the writer's
de-duplication starts empty in a new child, so a batch the dead one had stored can repeat
raw rows; consumers de-duplicate by ``seq``). If the new child fails too, the batch is
counted as ``lost`` and logged. Batches and ``close`` share one lock, so the pipe carries
one exchange at a time and nothing restarts a child after ``close``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import signal
import threading
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any

from cloud.hub.config import HubConfig

log = logging.getLogger("cloud.hub.ingest.bridge")
STOP_TIMEOUT_S = 10.0


class WriterProcess:
    """A :class:`cloud.hub.ingest.batch_writer.BatchWriter` in a child process."""

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self._ctx = multiprocessing.get_context("spawn")
        self._conn: Connection | None = None
        self._proc: Any = None
        self._lock = threading.Lock()  # one batch on the pipe at a time; close waits for it
        self._closed = False
        self._start()

    def _start(self) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=serve, args=(child, self.config), name="edgekit-hub-writer", daemon=True
        )
        proc.start()
        child.close()
        self._conn, self._proc = parent, proc

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def flush(self, raw: list[tuple[str, bytes]]) -> Counter[str]:
        """Have the child store ``raw``; the counters it changed."""
        with self._lock:
            return self._flush(raw)

    def _flush(self, raw: list[tuple[str, bytes]]) -> Counter[str]:
        extra: Counter[str] = Counter()
        for _attempt in (1, 2):
            if self._closed or self._conn is None:
                break
            try:
                self._conn.send(raw)
                got: Counter[str] = self._conn.recv()
                return got + extra
            except (EOFError, OSError) as exc:
                if self._closed:
                    break
                log.error("the hub writer process died (%s); starting a new one", exc)
                extra["writer_restarts"] += 1
                self._kill()
                try:
                    self._start()
                except Exception:
                    log.exception("cannot start a new writer process")
                    break
        log.error("%d messages not stored: the writer process is gone", len(raw))
        extra["lost"] += len(raw)
        return extra

    def close(self) -> None:
        """Let the batch in progress finish, ask the child to exit and wait for it (then
        terminate it). No batch is sent, nor child started, after this."""
        self._closed = True
        got = self._lock.acquire(timeout=STOP_TIMEOUT_S)
        try:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.send(None)
                self._proc.join(STOP_TIMEOUT_S)
            self._kill()
        finally:
            if got:
                self._lock.release()

    def _kill(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._proc.terminate()
            self._proc.join(5)
        if self._conn is not None:
            self._conn.close()
        self._conn = None


def serve(conn: Connection, config: HubConfig) -> None:
    """The child's loop: a batch in, the changed counters out; ``None`` or EOF ends it."""
    from cloud.hub.ingest.batch_writer import BatchWriter
    from cloud.hub.storage import Database

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the hub, which stops us
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s hub-writer %(name)s: %(message)s"
    )
    writer = BatchWriter(config, Database(config.database_url()))
    while True:
        try:
            batch = conn.recv()
        except (EOFError, OSError):
            return
        if batch is None:
            return
        try:
            delta = writer.flush(batch)
        except Exception:  # flush handles bad messages; this is a bug, not data
            log.exception("writing a batch of %d failed", len(batch))
            delta = Counter({"db_errors": len(batch)})
        conn.send(delta)
