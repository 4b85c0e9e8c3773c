"""The bridge's persistent MQTT session (issue 13), against a private Mosquitto with
persistence: what the broker acknowledged to a device reaches the database although the
broker was killed and the hub came back after the devices, the hub keeps its client id
across restarts (and crashes) but two hubs never share one, and a message is acknowledged
only once it is stored (the broker delivers an unstored one again)."""

from __future__ import annotations

import contextlib
import getpass
import socket
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from cloud.hub.config import HubConfig
from cloud.hub.ingest import MqttBridge
from cloud.hub.ingest.batch_writer import BatchWriter
from cloud.hub.ingest.session import SLOT_TTL_S, slot_name
from cloud.hub.storage import Database, TelemetryRaw, leases
from tests.cloud.hub import helpers
from tests.edge.brokers import MOSQUITTO, PrivateBroker, free_port
from tests.services import need_service
from tests.waiting import wait_for

pytestmark = pytest.mark.integration


class PersistentBroker(PrivateBroker):
    """Keeps sessions and queued messages across restarts, saving every second (a kill
    -9 loses what the broker had not saved, so the test waits for a save)."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(workdir, free_port())
        self.store = workdir / "mosquitto.db"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {workdir}/\nautosave_interval 1\nmax_queued_messages 100000\n"
            # started as root, Mosquitto would drop to its own user, who cannot write here
            f"user {getpass.getuser()}\n"
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None


class Gate:
    """A TCP relay to the broker that can refuse the hub while devices reconnect."""

    def __init__(self, upstream: int) -> None:
        self.upstream, self.open = upstream, True
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.port = self._srv.getsockname()[1]
        self._conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self._srv.accept()
            except OSError:
                return
            try:
                if not self.open:
                    raise OSError("gate closed")
                up = socket.create_connection(("127.0.0.1", self.upstream), timeout=2)
                up.settimeout(None)
            except OSError:
                down.close()
                continue
            self._conns += [down, up]
            for a, b in ((down, up), (up, down)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.open = False
        self._srv.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PersistentBroker]:
    if not Path(MOSQUITTO).exists():
        need_service(False, "mosquitto is not installed")
    b = PersistentBroker(tmp_path / "broker")
    b.start()
    yield b
    if b.proc is not None:
        b.stop()


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'hub.db'}")
    database.migrate()
    return database


def make_bridge(tmp_path: Path, db: Database, port: int, **cfg: Any) -> MqttBridge:
    config = HubConfig(
        data_dir=tmp_path / "hub",
        broker_url=f"mqtt://127.0.0.1:{port}",
        bridge_flush_s=0.1,
        mqtt_share_group=f"t{uuid.uuid4().hex[:6]}",
        **cfg,
    )
    return MqttBridge(config, db)


def publisher(port: int) -> mqtt.Client:
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"dev-{uuid.uuid4().hex[:6]}")
    c.reconnect_delay_set(1, 1)
    c.connect_async("127.0.0.1", port)
    c.loop_start()
    return c


def send(c: mqtt.Client, dev: str, seqs: range) -> dict[int, mqtt.MQTTMessageInfo]:
    wait_for(c.is_connected, what="the device connected")
    return {seq: c.publish(*helpers.telemetry(dev, seq), qos=1) for seq in seqs}


def stored(db: Database, dev: str) -> list[int]:
    with db.session() as s:
        return [r.seq for r in s.query(TelemetryRaw).filter_by(device_id=dev)]


# Mosquitto (2.0.11 here) does not restore shared subscriptions from its persistence file:
# after a broker restart only direct subscriptions (the lease consumer's) queue for the hub.
@pytest.mark.parametrize("settings", [{"mqtt_consumer": "lease"}, {"mqtt_version": "3.1.1"}])
def test_acked_telemetry_survives_a_broker_kill_while_the_hub_is_away(
    tmp_path: Path, db: Database, broker: PersistentBroker, settings: dict[str, str]
) -> None:
    gate = Gate(broker.port)
    bridge = make_bridge(tmp_path, db, gate.port, **settings).start()
    dev = f"k{uuid.uuid4().hex[:6]}"
    pub = publisher(broker.port)
    try:
        assert bridge.subscribed.wait(10)
        sent = send(pub, dev, range(1, 21))
        wait_for(lambda: sorted(stored(db, dev)) == list(range(1, 21)), what="first 20 stored")
        # the broker must have saved the hub's session before the crash (it saves each second)
        saved_after = broker.store.stat().st_mtime if broker.store.exists() else 0.0
        wait_for(lambda: broker.store.exists() and broker.store.stat().st_mtime > saved_after,
                 what="a broker save")  # fmt: skip
        gate.open = False  # the hub comes back only after the device
        broker.kill()
        wait_for(lambda: not bridge.connected.is_set(), what="the hub to notice")
        broker.start()
        sent |= send(pub, dev, range(21, 121))
        wait_for(lambda: all(i.is_published() for i in sent.values()), what="PUBACKs", timeout=30)
        gate.open = True
        acked = sorted(seq for seq, info in sent.items() if info.is_published())
        assert acked == list(range(1, 121))
        wait_for(lambda: sorted(set(stored(db, dev))) == acked, timeout=60, what="all stored")
    finally:
        pub.loop_stop()
        bridge.stop()
        gate.close()


def test_a_restarted_hub_takes_its_id_back_and_gets_what_was_queued(
    tmp_path: Path, db: Database, broker: PersistentBroker
) -> None:
    first = make_bridge(tmp_path, db, broker.port).start()
    assert first.subscribed.wait(10)
    cid = first.client_id
    assert cid.startswith("edgekit-hub-") and cid.endswith("-0")
    first.stop()
    dev = f"r{uuid.uuid4().hex[:6]}"
    pub = publisher(broker.port)
    try:
        sent = send(pub, dev, range(1, 31))  # while no hub is connected
        wait_for(lambda: all(i.is_published() for i in sent.values()), what="PUBACKs")
        second = make_bridge(tmp_path, db, broker.port).start()
        try:
            assert second.client_id == cid
            wait_for(lambda: sorted(stored(db, dev)) == list(range(1, 31)), what="queued stored")
        finally:
            second.stop()
    finally:
        pub.loop_stop()


def test_two_hubs_on_one_database_get_distinct_ids(
    tmp_path: Path, db: Database, broker: PersistentBroker
) -> None:
    a = make_bridge(tmp_path, db, broker.port).start()
    b = make_bridge(tmp_path, db, broker.port).start()
    try:
        assert a.client_id.endswith("-0") and b.client_id.endswith("-1")
        assert a.client_id.rsplit("-", 1)[0] == b.client_id.rsplit("-", 1)[0]
        assert a.wait_connected(10) and b.wait_connected(10)
        assert a.connected.is_set()  # b did not take a's session over
    finally:
        a.stop()
        b.stop()
    other = Database(f"sqlite:///{tmp_path / 'other.db'}")
    other.migrate()
    c = make_bridge(tmp_path, other, broker.port).start()
    try:  # another fleet (database) on the same broker never shares an id
        assert c.client_id not in (a.client_id, b.client_id)
    finally:
        c.stop()


def test_a_hub_started_after_a_crash_resumes_the_dead_hubs_slot(
    tmp_path: Path, db: Database, broker: PersistentBroker
) -> None:
    """kill -9 leaves slot 0's lease held by nobody renewing it: the new hub waits for it
    instead of taking slot 1 (whose session would never get slot 0's queue)."""
    assert leases.try_acquire(db, slot_name(0), SLOT_TTL_S, "crashed-hub")
    bridge = make_bridge(tmp_path, db, broker.port).start()
    try:
        assert bridge.client_id.endswith("-0")
        assert leases.holder_of(db, slot_name(0)).holder == bridge.holder
        assert not leases.holder_of(db, slot_name(1)).held
    finally:
        bridge.stop()


def test_configured_client_id_wins(tmp_path: Path, db: Database, broker: PersistentBroker) -> None:
    bridge = make_bridge(tmp_path, db, broker.port, mqtt_client_id="site_a-hub").start()
    try:
        assert bridge.client_id == "site_a-hub" and bridge.wait_connected(10)
        assert not leases.holder_of(db, slot_name(0)).held
    finally:
        bridge.stop()


class FlakySink:
    """The real writer, but the first ``failures`` batches raise (a database outage)."""

    def __init__(self, writer: BatchWriter, failures: int) -> None:
        self.writer, self.failures, self.calls = writer, failures, 0

    def flush(self, raw: list[tuple[str, bytes]]) -> Counter[str]:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError("database is down")
        return self.writer.flush(raw)

    def close(self) -> None:
        self.writer.close()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_a_message_is_acked_only_once_stored(
    tmp_path: Path, db: Database, broker: PersistentBroker, protocol: str
) -> None:
    bridge = make_bridge(tmp_path, db, broker.port, mqtt_version=protocol)
    sink = FlakySink(BatchWriter(bridge.config, db), failures=2)
    bridge._sink = sink
    bridge.start()
    dev = f"a{uuid.uuid4().hex[:6]}"
    pub = publisher(broker.port)
    try:
        assert bridge.subscribed.wait(10)
        sent = send(pub, dev, range(1, 11))
        wait_for(lambda: sorted(set(stored(db, dev))) == list(range(1, 11)), what="redelivered")
        assert bridge.counters["unacked"] >= 1 and sink.calls > 2
    finally:
        pub.loop_stop()
        bridge.stop()
    assert all(i.is_published() for i in sent.values())


def test_a_stopped_hub_leaves_unstored_messages_to_its_successor(
    tmp_path: Path, db: Database, broker: PersistentBroker
) -> None:
    bridge = make_bridge(tmp_path, db, broker.port)
    bridge._sink = FlakySink(BatchWriter(bridge.config, db), failures=10**6)
    bridge.start()
    dev = f"s{uuid.uuid4().hex[:6]}"
    pub = publisher(broker.port)
    try:
        assert bridge.subscribed.wait(10)
        send(pub, dev, range(1, 6))
        wait_for(lambda: bridge.counters["unacked"] >= 5, what="failed batches")
        bridge.stop()
        assert stored(db, dev) == []
        again = make_bridge(tmp_path, db, broker.port).start()
        try:
            wait_for(lambda: sorted(set(stored(db, dev))) == [1, 2, 3, 4, 5], what="redelivery")
        finally:
            again.stop()
    finally:
        pub.loop_stop()


# A hub process to kill -9: a bridge on the test's database and broker.
HUB = """
import sys, time
from pathlib import Path
from cloud.hub.config import HubConfig
from cloud.hub.ingest import MqttBridge
from cloud.hub.storage import Database
db_path, url, group = sys.argv[1:4]
cfg = HubConfig(data_dir=Path(db_path).parent / "gone", broker_url=url, mqtt_share_group=group)
bridge = MqttBridge(cfg, Database("sqlite:///" + db_path)).start()
assert bridge.subscribed.wait(10)
print(bridge.client_id, flush=True)
time.sleep(600)
"""


def test_the_share_of_a_killed_hub_reaches_the_database(
    tmp_path: Path, db: Database, broker: PersistentBroker
) -> None:
    """Mosquitto keeps giving a killed member's persistent session its share of a shared
    subscription: a live hub drains that session and ends it, so nothing stays there."""
    group = f"t{uuid.uuid4().hex[:6]}"
    gone = subprocess.Popen(
        [sys.executable, "-c", HUB, str(tmp_path / "hub.db"), broker.url, group],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[4],
    )  # fmt: skip
    assert gone.stdout is not None
    gone_id = gone.stdout.readline().strip()
    live = make_bridge(tmp_path, db, broker.port)
    live.config.mqtt_share_group = group
    live.start()
    dev = f"o{uuid.uuid4().hex[:6]}"
    pub = publisher(broker.port)
    try:
        assert gone_id.endswith("-0") and live.client_id.endswith("-1")
        assert live.subscribed.wait(10)
        gone.kill()
        gone.wait(10)
        sent = send(pub, dev, range(1, 41))
        wait_for(lambda: all(i.is_published() for i in sent.values()), what="PUBACKs")
        # half went to the dead session; the live hub drains it once its slot expires
        wait_for(lambda: sorted(set(stored(db, dev))) == list(range(1, 41)), timeout=40,
                 what="the dead hub's share")  # fmt: skip
        sent = send(pub, dev, range(41, 61))  # and the broker gives it all to the living
        wait_for(lambda: sorted(set(stored(db, dev))) == list(range(1, 61)), what="the rest")
    finally:
        pub.loop_stop()
        live.stop()
        if gone.poll() is None:
            gone.kill()
