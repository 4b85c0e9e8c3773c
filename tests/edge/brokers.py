"""A private Mosquitto on a free port, for tests that stop and restart the broker, and a
private 3-node NATS cluster (JetStream + MQTT) for the cluster tests.

Import the fixtures where needed: ``from tests.edge.brokers import private_broker`` (or
``nats_cluster``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import need_service

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PrivateBroker:
    """A Mosquitto we own, so tests can stop and restart it (outages)."""

    def __init__(self, workdir: Path, port: int, extra: str = "", anonymous: bool = True) -> None:
        self.port = port
        self.url = f"mqtt://127.0.0.1:{port}"
        self.conf = workdir / "mosquitto.conf"
        allow = "true" if anonymous else "false"
        self.conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous {allow}\n{extra}")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        err = b""
        if self.proc.poll() is not None and self.proc.stderr is not None:
            err = self.proc.stderr.read()
        raise RuntimeError(f"private mosquitto did not start: {err.decode(errors='replace')}")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[PrivateBroker]:
    if not Path(MOSQUITTO).exists():
        need_service(False, "mosquitto is not installed")
    broker = PrivateBroker(tmp_path, free_port())
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


# ----------------------------------------------------------------------------- NATS cluster

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


class NatsNode:
    """One ``nats-server`` of a :class:`NatsCluster`: JetStream, MQTT and a cluster route to
    every other node, each on a free loopback port (never the system service on 4222)."""

    def __init__(
        self, workdir: Path, name: str, ports: dict[str, int], routes: list[int], replicas: int
    ) -> None:
        self.name = name
        self.port = ports["mqtt"]
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.monitor = ports["http"]
        self.conf = workdir / f"{name}.conf"
        self.log = workdir / f"{name}.log"
        store = workdir / f"{name}-js"
        route_list = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes)
        self.conf.write_text(
            f'server_name: "{name}"\n'
            f"listen: 127.0.0.1:{ports['client']}\n"
            f"http: 127.0.0.1:{ports['http']}\n"
            f'jetstream {{ store_dir: "{store}", max_memory_store: 64MB, max_file_store: 256MB }}\n'
            f'cluster {{ name: "edgekit-test", listen: 127.0.0.1:{ports["route"]}, '
            f"routes: [{route_list}] }}\n"
            f"mqtt {{ listen: 127.0.0.1:{self.port}, stream_replicas: {replicas} }}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [NATS_SERVER, "-c", str(self.conf)], stdout=out, stderr=subprocess.STDOUT
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        """The node's own health check: up, routed, and JetStream current (``/healthz``)."""
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the node dies as in a crash (sessions and wills on it are lost)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
            self.proc = None


class NatsCluster:
    """Three (or ``size``) NATS nodes with JetStream and MQTT, routed to each other. ``urls``
    is the comma-separated broker list an agent or hub is given."""

    def __init__(self, workdir: Path, size: int = 3) -> None:
        ports = [{k: free_port() for k in ("client", "route", "http", "mqtt")} for _ in range(size)]
        routes = [p["route"] for p in ports]
        self.nodes = [
            NatsNode(workdir, f"n{i + 1}", p, [r for r in routes if r != p["route"]], size)
            for i, p in enumerate(ports)
        ]

    @property
    def urls(self) -> str:
        return ",".join(n.url for n in self.nodes)

    def start(self, timeout: float = 60.0) -> None:
        for node in self.nodes:
            node.start()
        self.wait_ready(timeout, health=True)

    def wait_ready(self, timeout: float = 60.0, *, health: bool = False) -> None:
        """Until every live node accepts an MQTT session (the first one on a node creates
        its MQTT streams, which takes seconds on a fresh cluster) and, with ``health``, also
        reports healthy. After a node was killed ``/healthz`` stays failing for a while on
        consumers of the sessions that died with it, so a restart waits on MQTT only."""
        deadline = time.monotonic() + timeout
        for node in [n for n in self.nodes if n.proc is not None]:
            while not (node.alive() and (node.healthy() or not health)
                       and mqtt_accepts(node.port)):  # fmt: skip
                if not node.alive() or time.monotonic() > deadline:
                    tail = node.log.read_text(errors="replace")[-2000:] if node.log.exists() else ""
                    raise RuntimeError(f"NATS node {node.name} not ready:\n{tail}")
                time.sleep(0.2)

    def meta_leader(self) -> NatsNode:
        """The node that leads JetStream's meta group now (``/jsz`` of a live node)."""
        import json
        import urllib.request

        for node in self.nodes:
            if not node.alive():
                continue
            url = f"http://127.0.0.1:{node.monitor}/jsz"
            with urllib.request.urlopen(url, timeout=2) as r:
                leader = json.load(r).get("meta_cluster", {}).get("leader")
            found = next((n for n in self.nodes if n.name == leader), None)
            if found is not None:
                return found
        raise RuntimeError("no JetStream meta leader")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def mqtt_accepts(port: int, timeout: float = 5.0) -> bool:
    """True once a broker answers an MQTT CONNECT on ``port`` with success (a CONNACK)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    done = threading.Event()
    ok: list[bool] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{port}-{time.time_ns()}")

    def on_connect(_c: object, _u: object, _f: object, rc: object, _p: object) -> None:
        ok.append(not getattr(rc, "is_failure", True))
        done.set()

    client.on_connect = on_connect
    try:
        client.connect("127.0.0.1", port, keepalive=10)
    except OSError:
        return False
    client.loop_start()
    try:
        return done.wait(timeout) and ok == [True]
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.fixture(scope="module")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """A private 3-node NATS cluster for one test module; tests that kill a node start it
    again (``node.start(); cluster.wait_ready()``) before they end."""
    if not Path(NATS_SERVER).exists():
        need_service(False, "nats-server is not installed")
    cluster = NatsCluster(tmp_path_factory.mktemp("nats"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
