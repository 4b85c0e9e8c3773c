"""Several hub processes on one PostgreSQL, behind a proxy, and the leader killed mid-rollout.

Three real ``edgekit hub serve`` processes share a throw-away PostgreSQL schema, a data
dir and a private Mosquitto (MQTT 5: telemetry and events on a shared subscription);
devices and the operator reach them through a small TCP proxy (what nginx or a cloud load
balancer does: the next live backend for each connection), which is also every hub's
``--public-url``. Four real agents are the devices. A rollout in three waves with a soak
runs; during wave 1's soak the leader (``GET /healthz`` says which) gets ``kill -9``. Then:

* another process reports ``leader: true`` within 15 s (measured: printed);
* the rollout continues from the database to ``completed``;
* every device received exactly one deploy command (an MQTT observer sees every command
  the hubs published) and reported one commit, and no agent refused a command;
* no telemetry or event was lost: every device's ``seq`` per boot is contiguous in the
  database across the kill.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import select

from cloud.hub.storage import Database, EventRow, TelemetryRaw
from edge.contract import topic_filter
from tests import waiting
from tests.cloud.hub.pg_schema import throwaway_schema
from tests.edge.brokers import PrivateBroker, free_port, private_broker  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CLI = [sys.executable, "-m", "edge.cli"]
AGENTS = ("mh-a", "mh-b", "mh-c", "mh-d")
HUBS = 3
TAKEOVER_LIMIT_S = 15.0
wait_for = functools.partial(waiting.wait_for, interval=0.25)


class Proxy:
    """A TCP proxy on ``port``: each connection goes to the next backend that accepts it
    (``backends`` may grow while it runs)."""

    def __init__(self, port: int, backends: list[int]) -> None:
        self.backends = backends
        self.sock = socket.create_server(("127.0.0.1", port))
        self._next = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        self._next += 1
        n = len(self.backends)
        for k in range(n):
            port = self.backends[(self._next + k) % n]
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=2)
            except OSError:
                continue  # a dead hub refuses at once: try the next
            upstream.settimeout(None)
            threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
            _pipe(client, upstream)
            return
        client.close()

    def close(self) -> None:
        self.sock.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class Fleet:
    """The hub processes, the proxy in front of them and the operator's API calls."""

    def __init__(self, tmp: Path, db_url: str, broker: str, keys: Any) -> None:
        self.data, self.db_url, self.broker, self.keys = tmp / "hub", db_url, broker, keys
        self.public_port = free_port()
        self.public = f"http://127.0.0.1:{self.public_port}"
        self.procs: list[subprocess.Popen[str]] = []
        self.ports: list[int] = []
        self.logs = tmp
        self.proxy = Proxy(self.public_port, self.ports)  # every hub's --public-url

    def start(self) -> None:
        for i in range(HUBS):  # one after the other: the first one migrates the schema
            log = (self.logs / f"hub-{i}.log").open("w")
            proc = subprocess.Popen(
                [*CLI, "hub", "serve", "--port", "0", "--data-dir", str(self.data),
                 "--db", self.db_url, "--broker", self.broker, "--public-url", self.public,
                 "--trusted-key", str(self.keys[1])],
                stdout=subprocess.PIPE, stderr=log, text=True,
            )  # fmt: skip
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("edgekit hub listening"), self.logs / f"hub-{i}.log"
            self.procs.append(proc)
            self.ports.append(int(line.split(":")[-1]))
        self.token = self.admin("create-token", "--role", "operator")

    def admin(self, *args: str) -> str:
        cmd = [*CLI, "hub", *args, "--data-dir", str(self.data), "--db", self.db_url]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        return out.stdout.strip().splitlines()[-1]

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            self.public + "/api/v1" + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def bridge_counters(self) -> str:
        """What the bridges of all hubs did with the messages (for failure messages)."""
        req = urllib.request.Request(self.public + "/metrics")
        with urllib.request.urlopen(req, timeout=10) as resp:
            text = resp.read().decode()
        return "; ".join(line for line in text.splitlines() if line.startswith("edgekit_bridge"))

    def health(self, i: int) -> dict[str, Any] | None:
        """Hub ``i``'s own ``/healthz`` (not through the proxy); None when it is down."""
        url = f"http://127.0.0.1:{self.ports[i]}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                body: dict[str, Any] = json.loads(r.read())
                return body
        except (urllib.error.URLError, OSError):
            return None

    def leaders(self, alive: list[int]) -> list[int]:
        return [i for i in alive if (h := self.health(i)) is not None and h["leader"]]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.proxy.close()


class CommandLog:
    """Every command the hubs publish, as the broker delivers it to a device."""

    def __init__(self, broker: PrivateBroker) -> None:
        self.seen: list[dict[str, Any]] = []
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="mh-observer")
        self.client.on_message = lambda _c, _u, m: self.seen.append(json.loads(m.payload))
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.on_connect = lambda c, *_a: c.subscribe(topic_filter("cmd"), qos=1)
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "the observer's subscription was not acknowledged"

    def deploys(self, rid: str) -> Counter[str]:
        return Counter(c["device"] for c in list(self.seen)
                       if c.get("kind") == "deploy" and c.get("rollout") == rid)  # fmt: skip

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def fleet(tmp_path: Path, keys: Any, private_broker: PrivateBroker) -> Iterator[Fleet]:  # noqa: F811
    with throwaway_schema("multihub") as url:
        f = Fleet(tmp_path, url, private_broker.url, keys)
        try:
            f.start()
            yield f
        finally:
            f.stop()


def test_killing_the_leader_mid_rollout_loses_nothing_and_sends_nothing_twice(
    fleet: Fleet,
    keys: Any,
    make_bundle: Any,
    tmp_path: Path,
    private_broker: PrivateBroker,  # noqa: F811
) -> None:
    v1, v2 = make_bundle(1), make_bundle(2)
    for path in (v1, v2):
        up = subprocess.run([*CLI, "hub", "upload", str(path), "--hub", fleet.public,
                             "--token", fleet.token], capture_output=True, text=True)  # fmt: skip
        assert up.returncode == 0, up.stderr
    commands = CommandLog(private_broker)
    alive = list(range(HUBS))
    # devices start once every hub stores what they send (its shared subscription is acked)
    wait_for(lambda: all((h := fleet.health(i)) and h["ingest"] == "shared" for i in alive),
             30, "every hub subscribed")  # fmt: skip
    agents = []
    for dev in AGENTS:
        log = (tmp_path / f"{dev}.log").open("w")
        agents.append(subprocess.Popen(
            [*CLI, "agent", "run", "--device-id", dev, "--broker", private_broker.url,
             "--data-dir", str(tmp_path / dev), "--bundle", str(v1),
             "--trusted-key", str(keys[1]), "--hub", fleet.public,
             "--enroll-token", fleet.admin("enroll-token", "--tags", "mh"),
             "--telemetry-interval", "1", "--probation-seconds", "1",
             "--probation-min-inferences", "0", "--selftest-time-budget", "0.2"],
            stdout=log, stderr=subprocess.STDOUT,
        ))  # fmt: skip
    try:

        def versions() -> dict[str, Any]:
            devs = {d["id"]: d for d in fleet.api("GET", "/devices")}
            return {k: (devs[k]["model"] or {}).get("version") for k in AGENTS if k in devs}

        wait_for(lambda: versions() == dict.fromkeys(AGENTS, 1), 120, "agents on v1")
        assert all(h is not None and h["db"] == "ok" and h["broker"] == "connected"
                   for h in map(fleet.health, alive))  # fmt: skip
        (leader,) = wait_for(lambda: fleet.leaders(alive), 15, "one leader")
        workers = {fleet.health(i)["worker"] for i in alive}  # type: ignore[index]
        assert len(workers) == HUBS
        assert {fleet.health(i)["leader_worker"] for i in alive} == {  # type: ignore[index]
            fleet.health(leader)["worker"]  # type: ignore[index]
        }

        rid = fleet.api("POST", "/rollouts", {
            "model": "digits", "version": 2, "target": {"tags": ["mh"]},
            "waves": [25, 50, 100], "soak_seconds": 6, "error_threshold": 0, "gates": {},
        })["id"]  # fmt: skip

        def soaking() -> bool:
            r = fleet.api("GET", f"/rollouts/{rid}")
            return bool(r["state"] == "running" and r["current_wave"] == 0 and r["committed"])

        wait_for(soaking, 120, "wave 1 committed and soaking")
        (leader,) = fleet.leaders(alive)  # the leader may have moved; kill the one now
        os.kill(fleet.procs[leader].pid, signal.SIGKILL)
        killed_at, killed_wall = time.monotonic(), time.time()
        fleet.procs[leader].wait(10)
        alive.remove(leader)
        (new,) = wait_for(lambda: fleet.leaders(alive), TAKEOVER_LIMIT_S, "a new leader")
        takeover = time.monotonic() - killed_at
        print(f"takeover after kill -9 of the leader: {takeover:.1f} s")
        assert takeover < TAKEOVER_LIMIT_S and new != leader

        ends = ("completed", "paused", "rolled_back", "aborted")
        r = wait_for(lambda: (x := fleet.api("GET", f"/rollouts/{rid}"))["state"] in ends and x,
                     180, "rollout end")  # fmt: skip
        assert r["state"] == "completed", json.dumps(r.get("audit"), indent=1)
        assert [w["committed"] for w in r["waves"]] == [1, 1, 2]
        assert all(d["attempts"] == 1 for d in r["deployments"]), r["deployments"]
        wait_for(lambda: versions() == dict.fromkeys(AGENTS, 2), 30, "agents on v2")
        # no device was sent two deploys, and the hubs sent exactly one per device
        assert commands.deploys(rid) == Counter(dict.fromkeys(AGENTS, 1)), commands.seen
        ids = [c["id"] for c in commands.seen]
        assert len(ids) == len(set(ids))
        _no_gaps(fleet.db_url, killed_wall, fleet.bridge_counters)
        _one_commit_each(fleet.db_url, rid)
    finally:
        commands.close()
        for a in agents:
            a.terminate()
        for a in agents:
            a.wait(15)
    for dev in AGENTS:
        text = (tmp_path / f"{dev}.log").read_text()
        assert "refused" not in text and "replayed" not in text, text[-2000:]


def _no_gaps(db_url: str, killed_wall: float, counters: Any) -> None:
    """Every device's telemetry and events: one row per seq, no seq missing, some after
    the kill."""
    db = Database(db_url)
    try:
        with db.session() as s:
            for table in (TelemetryRaw, EventRow):
                seqs: dict[tuple[str, str | None], set[int]] = defaultdict(set)
                last: dict[str, float] = {}
                for dev, boot, seq, ts in s.execute(
                    select(table.device_id, table.boot, table.seq, table.ts)
                ):
                    seqs[(dev, boot)].add(seq)
                    last[dev] = max(last.get(dev, 0.0), ts)
                assert {dev for dev, _b in seqs} == set(AGENTS), (table.__tablename__, seqs)
                for key, got in seqs.items():
                    missing = set(range(min(got), max(got) + 1)) - got
                    where = f"{table.__tablename__} {key}: lost seq {missing}"
                    assert not missing, f"{where} (seen {sorted(got)[:8]}...; {counters()})"
                    assert min(got) == 0, f"{table.__tablename__} {key} starts at {min(got)}"
                if table is TelemetryRaw:
                    assert all(t > killed_wall + 3 for t in last.values()), last
    finally:
        db.dispose()


def _one_commit_each(db_url: str, rid: str) -> None:
    db = Database(db_url)
    try:
        with db.session() as s:
            rows = s.execute(
                select(EventRow.device_id, EventRow.command)
                .where(EventRow.rollout == rid, EventRow.step == "committed")
            ).all()  # fmt: skip
    finally:
        db.dispose()
    assert Counter(dev for dev, _c in rows) == Counter(dict.fromkeys(AGENTS, 1)), rows
