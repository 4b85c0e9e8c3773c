"""Many simulated devices in one process, driven by one selector loop.

paho supports an external event loop (``socket()``, ``loop_read()``, ``loop_write()``,
``loop_misc()``, ``want_write()``): one thread multiplexes every device's socket, so a
process holds hundreds of real MQTT sessions without a thread each. Installs (HTTP
downloads, self-tests) run on a small thread pool so they never stall the loop.

Several brokers (``broker`` comma-separated, a cluster): device ``i`` starts on broker
``i mod n``, and a device whose connection fails or drops moves to the next broker after a
jittered back-off (:class:`edge.messaging.Failover`, as the real agent does), re-publishing
its retained status on every connect.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import os
import queue
import selectors
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloud.sim.bundles import BundleCache
from cloud.sim.device import ModelCache, SimDevice
from edge import contract
from edge.agent import trusted_keys
from edge.messaging import Failover, parse_broker_urls

log = logging.getLogger("edgekit.sim")


@dataclass
class FleetSpec:
    """What one simulator process runs."""

    broker: str
    device_ids: list[str]
    trusted_key: str
    token: str | None = None
    telemetry_interval: float = 10.0
    probation_s: float = 2.0
    runtime: str | None = "litert"
    install_workers: int = 4
    connect_rate: float = 200.0  # new connections per second, so a broker is not stormed
    tags: list[str] = field(default_factory=list)
    command_key: str | None = None  # the hub's command key (PEM): devices then check commands
    # one cached bundle file per process, revalidated per device (If-None-Match: cloud.sim.bundles)
    share_downloads: bool = True


class Fleet:
    """Connect, serve and report for every device of one process until stopped."""

    def __init__(self, spec: FleetSpec, cache_dir: Path) -> None:
        import paho.mqtt.client as mqtt

        self._mqtt = mqtt
        self.spec = spec
        self.endpoints = parse_broker_urls(spec.broker)  # ConfigError names a bad URL
        if any(e.tls for e in self.endpoints):
            raise ValueError(f"simulator broker must be mqtt://HOST:PORT, got {spec.broker!r}")
        self.host, self.port = self.endpoints[0].host, self.endpoints[0].port
        self.failover: dict[str, Failover] = {}  # per device: which broker, when to retry
        self.retry_at: dict[str, float] = {}
        self._fds: dict[str, int] = {}  # device -> the socket number it is registered with
        self.cache = ModelCache(cache_dir, Path(spec.trusted_key), spec.runtime)
        self.bundles = BundleCache(cache_dir / "downloads") if spec.share_downloads else None
        # (due, seq, callback): probation ends, run on the loop thread (see schedule)
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_lock = threading.Lock()
        self._timer_seq = itertools.count()
        self._ticks: list[tuple[float, str]] = []  # (next telemetry due, device id)
        self.command_keys = trusted_keys([Path(spec.command_key)]) if spec.command_key else None
        self.pool = ThreadPoolExecutor(spec.install_workers, thread_name_prefix="sim-install")
        self.selector = selectors.DefaultSelector()
        self.devices: dict[str, SimDevice] = {}
        self._inbox: queue.SimpleQueue[tuple[SimDevice, str, bytes]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self.connected = 0

    def _make(self, device_id: str) -> SimDevice:
        mqtt = self._mqtt
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"edgekit-sim-{device_id}")
        client.max_queued_messages_set(1000)
        dev = SimDevice(
            device_id,
            client,
            self.cache,
            self.spec.token,
            probation_s=self.spec.probation_s,
            tags=self.spec.tags,
            command_keys=self.command_keys,
            bundles=self.bundles,
            schedule=self.schedule,
        )
        client.will_set(
            contract.topic(device_id, contract.STATUS), dev.will_payload(), qos=1, retain=True
        )

        was_connected = [False]

        def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
            if not rc.is_failure:
                self.connected += 1
                was_connected[0] = True
                self.failover[device_id].connected()
                dev.on_connect()

        def on_disconnect(_c: Any, _u: Any, _f: Any, _rc: Any, _p: Any = None) -> None:
            if was_connected[0]:
                self.connected -= 1
            was_connected[0] = False

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            self._inbox.put((dev, msg.topic, msg.payload))

        client.on_connect, client.on_disconnect = on_connect, on_disconnect
        client.on_message = on_message
        return dev

    def _register(self, dev: SimDevice) -> None:
        self._unregister(dev)
        sock = dev.client.socket()
        if sock is not None:
            self.selector.register(sock, selectors.EVENT_READ, dev)
            self._fds[dev.id] = sock.fileno()

    def _unregister(self, dev: SimDevice) -> None:
        """Forget the device's socket by its number: paho may have closed the socket object
        already, and a new socket can get the same number."""
        fd = self._fds.pop(dev.id, None)
        if fd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(fd)

    def _connect_all(self) -> None:
        gap = 1.0 / self.spec.connect_rate
        for i, did in enumerate(self.spec.device_ids):
            if self._stop.is_set():
                return
            failover = Failover(self.endpoints, cap=30.0)
            failover.index = i % len(self.endpoints)  # spread the fleet over the cluster
            self.failover[did] = failover
            dev = self._make(did)
            first = failover.current
            self.devices[did] = dev
            # each device reports one interval after it came up, as an agent does: the
            # fleet's telemetry is spread evenly, and the first devices are not silent
            # (and swept offline by the hub) while the last ones still connect
            heapq.heappush(self._ticks, (time.monotonic() + self.spec.telemetry_interval, did))
            self._tick_due()
            try:
                dev.client.connect(first.host, first.port, keepalive=60)
            except OSError as exc:  # the misc loop retries, on the next broker of the list
                log.warning("%s: connect to %s failed: %s", did, first.address, exc)
                _next, delay = failover.failed()
                self.retry_at[did] = time.monotonic() + delay
                continue
            self._register(dev)
            self._pump_once(0)
            time.sleep(gap)

    def schedule(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop thread after ``delay`` seconds (thread-safe): a device on
        probation waits here, not on an install thread, so a wave of hundreds of devices
        is not throttled by the size of the install pool."""
        with self._timer_lock:
            heapq.heappush(self._timers, (time.monotonic() + delay, next(self._timer_seq), fn))

    def _run_timers(self) -> None:
        now = time.monotonic()
        due: list[Callable[[], None]] = []
        with self._timer_lock:
            while self._timers and self._timers[0][0] <= now:
                due.append(heapq.heappop(self._timers)[2])
        for fn in due:
            try:
                fn()
            except Exception:  # one device's failure never stops the fleet
                log.exception("scheduled callback failed")

    def _pump_once(self, timeout: float) -> None:
        with self._timer_lock:
            if self._timers:
                timeout = max(0.0, min(timeout, self._timers[0][0] - time.monotonic()))
        for key, _mask in self.selector.select(timeout):
            dev: SimDevice = key.data
            if dev.client.loop_read() != 0:
                self._reconnect(dev)
        for dev in self.devices.values():
            if dev.client.want_write():
                dev.client.loop_write()
        self._dispatch()
        self._run_timers()

    def _dispatch(self) -> None:
        run_async: Callable[..., Any] = self.pool.submit
        while True:
            try:
                dev, topic, payload = self._inbox.get_nowait()
            except queue.Empty:
                return
            try:
                dev.on_message(topic, payload, run_async)
            except Exception:  # one bad message never stops the fleet
                log.exception("%s: handler failed", dev.id)

    def _reconnect(self, dev: SimDevice) -> None:
        """Drop the dead socket, then (once the device's back-off has passed) connect to the
        next broker of the list; a failed attempt is retried by the misc loop below."""
        self._unregister(dev)
        now = time.monotonic()
        due = self.retry_at.get(dev.id)
        if due is None:  # just failed: pick the next broker and wait its back-off
            _next, delay = self.failover[dev.id].failed()
            self.retry_at[dev.id] = now + delay
            return
        if now < due:
            return
        del self.retry_at[dev.id]
        target = self.failover[dev.id].current
        try:
            dev.client.connect(target.host, target.port, keepalive=60)
            self._register(dev)
        except OSError as exc:
            log.debug("%s: reconnect to %s failed: %s", dev.id, target.address, exc)
            _next, delay = self.failover[dev.id].failed()
            self.retry_at[dev.id] = time.monotonic() + delay

    def run(self, duration: float | None = None) -> None:
        parent = os.getppid()
        self._connect_all()
        next_misc = time.monotonic() + 1.0
        end = time.monotonic() + duration if duration else None
        while not self._stop.is_set() and (end is None or time.monotonic() < end):
            self._pump_once(0.05)
            now = time.monotonic()
            if now >= next_misc:
                next_misc = now + 1.0
                if os.getppid() != parent:  # the simulate command died (kill -9): so do we
                    log.warning("simulator parent %d is gone: stopping", parent)
                    break
                for dev in self.devices.values():
                    if dev.client.loop_misc() != 0 or dev.client.socket() is None:
                        self._reconnect(dev)
            self._tick_due()
        self.close()

    def _tick_due(self) -> None:
        """Telemetry from every device whose interval is up (a heap: O(log n) a device)."""
        now = time.monotonic()
        interval = self.spec.telemetry_interval
        while self._ticks and self._ticks[0][0] <= now:
            due, did = heapq.heappop(self._ticks)
            dev = self.devices.get(did)
            if dev is None:
                continue
            # a loop that fell behind skips the missed ticks instead of bursting them
            heapq.heappush(self._ticks, (max(due + interval, now), did))
            try:
                dev.tick()
            except Exception:
                log.exception("%s: telemetry failed", dev.id)

    def stop(self) -> None:
        self._stop.set()

    def close(self, timeout: float = 10.0) -> None:
        """Say goodbye like a real agent: the retained offline status, acknowledged by the
        broker (QoS 1), then DISCONNECT — so no will fires and no status is left online."""
        infos = []
        for dev in self.devices.values():
            with contextlib.suppress(Exception):
                infos.append(dev.publish(contract.STATUS, dev.status("offline"), retain=True))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(i.is_published() for i in infos):
            self._pump_once(0.05)
        for dev in self.devices.values():
            with contextlib.suppress(Exception):
                dev.client.disconnect()
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(
            d.client.want_write() for d in self.devices.values()
        ):
            self._pump_once(0.02)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.selector.close()


def run_process(spec: FleetSpec, duration: float | None = None) -> None:
    """Entry point of one simulator process."""
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="edgekit-sim-cache-") as cache:
        fleet = Fleet(spec, Path(cache))
        signal.signal(signal.SIGTERM, lambda *_: fleet.stop())
        signal.signal(signal.SIGINT, lambda *_: fleet.stop())
        fleet.run(duration)
