"""The outbox keeps order, survives crashes and torn writes, stays bounded, and delivers
every message in order across a broker outage."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge.errors import ConfigError, ContractError, StorageError, TransportError
from edge.messaging import MemoryBroker, MemoryTransport, Outbox


def payloads(box: Outbox) -> list[bytes]:
    return [r.payload for r in box.pending()]


def connected_pair() -> tuple[MemoryBroker, MemoryTransport, list[bytes]]:
    broker = MemoryBroker()
    got: list[bytes] = []
    watcher = MemoryTransport(broker, "watcher")
    watcher.subscribe("t/#", lambda _t, p: got.append(p))
    watcher.connect()
    agent = MemoryTransport(broker, "agent")
    agent.connect()
    return broker, agent, got


def test_order_and_reopen(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        ids = [box.put("t/a", b"m%d" % i, qos=1, retain=i == 2) for i in range(5)]
        assert ids == [1, 2, 3, 4, 5]
    with Outbox(tmp_path) as box:
        recs = box.pending()
        assert [r.payload for r in recs] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
        assert [r.retain for r in recs] == [False, False, True, False, False]
        assert box.put("t/a", b"m5") == 6  # ids keep growing after a reopen
        assert box.stats()["queued"] == 6


def test_drain_deletes_only_acknowledged(tmp_path: Path) -> None:
    class FlakyTransport(MemoryTransport):
        def __init__(self, broker: MemoryBroker, fail_at: int) -> None:
            super().__init__(broker, "flaky")
            self.calls, self.fail_at = 0, fail_at

        def publish_and_wait(self, *args: object, **kw: object) -> bool:
            self.calls += 1
            return self.calls < self.fail_at and super().publish_and_wait(*args, **kw)  # type: ignore[arg-type]

    broker, _agent, got = connected_pair()
    flaky = FlakyTransport(broker, fail_at=3)
    flaky.connect()
    with Outbox(tmp_path) as box:
        for i in range(5):
            box.put("t/x", b"%d" % i)
        assert box.drain(flaky) == 2
        assert got == [b"0", b"1"]
        assert payloads(box) == [b"2", b"3", b"4"]
    with Outbox(tmp_path) as box:  # acknowledgements were persisted
        assert payloads(box) == [b"2", b"3", b"4"]


def test_torn_last_record_is_skipped(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        for i in range(3):
            box.put("t/x", b"payload-%d" % i)
    seg = sorted(tmp_path.glob("seg-*.log"))[-1]
    size = seg.stat().st_size
    with open(seg, "r+b") as f:
        f.truncate(size - 4)  # a crash in the middle of the last write
    with Outbox(tmp_path) as box:
        assert payloads(box) == [b"payload-0", b"payload-1"]
        box.put("t/x", b"after")
    with Outbox(tmp_path) as box:  # the appended record after the cut is intact
        assert payloads(box) == [b"payload-0", b"payload-1", b"after"]


def test_corrupted_record_and_garbage_tail(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        for i in range(3):
            box.put("t/x", b"p%d" % i)
    seg = sorted(tmp_path.glob("seg-*.log"))[-1]
    data = bytearray(seg.read_bytes())
    data[-1] ^= 0xFF  # flip a bit in the last payload: crc mismatch
    seg.write_bytes(bytes(data) + b"\x00garbage")
    with Outbox(tmp_path) as box:
        assert payloads(box) == [b"p0", b"p1"]


def test_unreadable_state_resends_everything(tmp_path: Path) -> None:
    with Outbox(tmp_path) as box:
        box.put("t/x", b"a")
        box.put("t/x", b"b")
    (tmp_path / "state.json").write_text("{not json")
    with Outbox(tmp_path) as box:
        assert payloads(box) == [b"a", b"b"]


def test_bounded_by_count_with_persisted_drops(tmp_path: Path) -> None:
    with Outbox(tmp_path, max_messages=3) as box:
        for i in range(10):
            box.put("t/x", b"%d" % i)
        assert payloads(box) == [b"7", b"8", b"9"]
        assert box.stats()["dropped"] == 7
    with Outbox(tmp_path, max_messages=3) as box:
        assert box.stats() == {"queued": 3, "dropped": 7, "bytes": box.stats()["bytes"]}
    with Outbox(tmp_path, max_messages=2) as box:  # a smaller bound applies on open
        assert payloads(box) == [b"8", b"9"]
        assert box.stats()["dropped"] == 8


def test_bounded_by_bytes(tmp_path: Path) -> None:
    with Outbox(tmp_path, max_bytes=4096) as box:
        for i in range(100):
            box.put("t/x", b"%03d" % i + b"." * 100)
        st = box.stats()
        assert st["bytes"] <= 4096
        assert st["queued"] + st["dropped"] == 100
        assert payloads(box)[-1].startswith(b"099")
        total_disk = sum(p.stat().st_size for p in tmp_path.glob("seg-*.log"))
        assert total_disk <= 4096 + box.segment_bytes


def test_segments_roll_and_are_deleted(tmp_path: Path) -> None:
    _broker, agent, got = connected_pair()
    with Outbox(tmp_path, max_bytes=1 << 20, segment_bytes=1024) as box:
        for i in range(200):
            box.put("t/x", b"%d" % i + b"-" * 40)
        assert len(list(tmp_path.glob("seg-*.log"))) > 5
        assert box.drain(agent) == 200
        assert len(list(tmp_path.glob("seg-*.log"))) == 1
    assert [int(p.split(b"-")[0]) for p in got] == list(range(200))
    with Outbox(tmp_path, segment_bytes=1024) as box:
        assert box.pending() == []
        assert box.put("t/x", b"next") == 201


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        Outbox(tmp_path / "a", max_bytes=10)
    with Outbox(tmp_path / "b", max_bytes=4096) as box:
        with pytest.raises(ContractError, match="exceeds"):
            box.put("t/x", b"x" * 5000)
        with pytest.raises(TransportError):
            box.put("t/#", b"x")
        with pytest.raises(TransportError):
            box.put("t/x", b"x", qos=3)
        with pytest.raises(ContractError):
            box.put("t/x", "text")  # type: ignore[arg-type]
        assert box.stats()["queued"] == 0


def test_one_process_per_directory(tmp_path: Path) -> None:
    with Outbox(tmp_path), pytest.raises(StorageError, match="in use"):
        Outbox(tmp_path)
    Outbox(tmp_path).close()  # released on close


def test_every_message_arrives_in_order_across_outages(tmp_path: Path) -> None:
    broker, agent, got = connected_pair()
    n = 300
    with Outbox(tmp_path, fsync=False) as box:
        box.start(agent, interval=0.01)
        for i in range(n):
            box.put("t/seq", json.dumps({"seq": i}).encode())
            if i % 50 == 10:
                broker.down()
            if i % 50 == 30:
                broker.up()
            time.sleep(0.001)
        broker.up()
        deadline = time.monotonic() + 10
        while box.stats()["queued"] and time.monotonic() < deadline:
            time.sleep(0.01)
    seqs = [json.loads(p)["seq"] for p in got]
    assert seqs == list(range(n))


def test_drain_from_concurrent_producers_keeps_each_producers_order(tmp_path: Path) -> None:
    _broker, agent, got = connected_pair()
    with Outbox(tmp_path, fsync=False) as box:
        box.start(agent, interval=0.01)

        def produce(name: str) -> None:
            for i in range(100):
                box.put("t/p", f"{name}:{i}".encode())

        threads = [threading.Thread(target=produce, args=(n,)) for n in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + 10
        while box.stats()["queued"] and time.monotonic() < deadline:
            time.sleep(0.01)
    for name in "ab":
        mine = [int(p.split(b":")[1]) for p in got if p.startswith(name.encode())]
        assert mine == list(range(100))


WRITER = """
import sys
from pathlib import Path
from edge.messaging.outbox import Outbox
box = Outbox(Path(sys.argv[1]), max_messages=1_000_000, max_bytes=64 << 20)
i = 0
while True:
    box.put("t/kill", b"%08d" % i + b"x" * (i % 997))
    i += 1
    if i == 50:
        print("ready", flush=True)
"""


@pytest.mark.slow
def test_sigkill_mid_write_leaves_a_clean_prefix(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    for round_ in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, env=env
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(0.1 + 0.05 * round_)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        with Outbox(tmp_path, max_messages=1_000_000, max_bytes=64 << 20) as box:
            recs = box.pending()
            assert len(recs) >= 50
            assert [r.id for r in recs] == list(range(1, len(recs) + 1))
            for r in recs:
                assert r.topic == "t/kill"
                assert len(r.payload) == 8 + int(r.payload[:8]) % 997
        # the next writer appends after the recovered prefix; no ids are reused
