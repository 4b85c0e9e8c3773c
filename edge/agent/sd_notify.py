"""The systemd notify protocol (sd_notify(3)), without libsystemd or any other dependency.

systemd passes ``$NOTIFY_SOCKET`` (a filesystem path, or ``@name`` for an abstract socket)
to a ``Type=notify`` service; the service sends ``KEY=VALUE`` lines in one datagram per
message. ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``, naming the process meant) asks for a
``WATCHDOG=1`` at least that often. Outside systemd every call here is a no-op, so the
agent runs the same from a shell, a container or a test.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


def socket_address(value: str) -> str | bytes:
    """The address to send to: a path as is, ``@name`` as an abstract (Linux) address."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def watchdog_interval(environ: Mapping[str, str], pid: int | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``, as sd_watchdog_enabled
    advises), or None when no watchdog is asked of this process (unset, malformed, zero, or
    ``WATCHDOG_PID`` naming another process)."""
    raw = environ.get("WATCHDOG_USEC", "").strip()
    if not raw:
        return None
    try:
        usec = int(raw)
    except ValueError:
        log.warning("WATCHDOG_USEC=%r is not an integer: watchdog pings off", raw)
        return None
    if usec <= 0:
        return None
    owner = environ.get("WATCHDOG_PID", "").strip()
    if owner:
        try:
            if int(owner) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            log.warning("WATCHDOG_PID=%r is not a process id: watchdog pings off", owner)
            return None
    return usec / 2e6


class Notifier:
    """Sends notify messages to ``$NOTIFY_SOCKET``; does nothing when it is unset.

    A send that fails (socket gone, systemd restarting) is logged once and never raised: a
    notification must not take the agent down.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = socket_address(raw) if raw else None
        self.watchdog: float | None = watchdog_interval(env) if self.address else None
        self._sock: socket.socket | None = None
        self._warned = False
        self._last_ping = 0.0
        self._status: str | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """Send ``fields`` (``KEY=VALUE`` each) as one datagram; True if it was sent."""
        if self.address is None:
            return False
        data = "\n".join(f.replace("\n", " ") for f in fields).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(data, self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("sd_notify to %r failed: %s", self.address, exc)
                self._warned = True
            return False
        return True

    def ready(self, status: str) -> None:
        self._status = status
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")
        self._last_ping = time.monotonic()

    def status(self, status: str) -> None:
        """Send ``STATUS=`` only when it changed (``systemctl status`` shows the last one)."""
        if status != self._status:
            self._status = status
            self.send(f"STATUS={status}")

    def ping_due(self, now: float | None = None) -> bool:
        if self.watchdog is None:
            return False
        now = time.monotonic() if now is None else now
        return now - self._last_ping >= self.watchdog

    def ping(self) -> None:
        """``WATCHDOG=1``: call only when the service is healthy, so a hung one is killed."""
        if self.watchdog is not None:
            self.send("WATCHDOG=1")
            self._last_ping = time.monotonic()

    def stopping(self, status: str = "stopping") -> None:
        self._status = status
        self.send("STOPPING=1", f"STATUS={status}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
