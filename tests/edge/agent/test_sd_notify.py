"""sd_notify against a real AF_UNIX datagram socket standing in for systemd's
NOTIFY_SOCKET (a path and an abstract address), and the liveness check that gates the
watchdog pings."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.agent.liveness import Liveness, worker_key
from edge.agent.sd_notify import Notifier, socket_address, watchdog_interval


class FakeSystemd:
    """A bound datagram socket: what systemd listens on; :meth:`next` is one message."""

    def __init__(self, address: str) -> None:
        self.env_value = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(socket_address(address))
        self.sock.settimeout(5)

    def next(self) -> dict[str, str]:
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n"))

    def nothing_waiting(self) -> bool:
        self.sock.settimeout(0.05)
        try:
            self.sock.recv(4096)
        except TimeoutError:
            return True
        finally:
            self.sock.settimeout(5)
        return False


@pytest.fixture(params=["path", "abstract"])
def systemd(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FakeSystemd]:
    name = str(tmp_path / "notify.sock") if request.param == "path" else "@ek-" + uuid.uuid4().hex
    fake = FakeSystemd(name)
    yield fake
    fake.sock.close()


def test_ready_status_watchdog_and_stopping_reach_the_socket(systemd: FakeSystemd) -> None:
    env = {"NOTIFY_SOCKET": systemd.env_value, "WATCHDOG_USEC": "2000000"}
    notifier = Notifier(env)
    assert notifier.enabled and notifier.watchdog == 1.0
    notifier.ready("serving digits-1; broker connected")
    msg = systemd.next()
    assert msg["READY"] == "1"
    assert msg["STATUS"] == "serving digits-1; broker connected"
    assert msg["MAINPID"] == str(os.getpid())
    notifier.ping()
    assert systemd.next() == {"WATCHDOG": "1"}
    notifier.status("serving digits-1; broker connected")  # unchanged: not sent again
    notifier.status("line one\nline two")
    assert systemd.next() == {"STATUS": "line one line two"}  # one status, one line
    notifier.stopping()
    assert systemd.next() == {"STOPPING": "1", "STATUS": "stopping"}
    assert systemd.nothing_waiting()
    notifier.close()


def test_pings_are_due_every_half_watchdog_interval(systemd: FakeSystemd) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": systemd.env_value, "WATCHDOG_USEC": "1000000"})
    notifier.ready("up")
    systemd.next()
    now = time.monotonic()
    assert not notifier.ping_due(now + 0.2)
    assert notifier.ping_due(now + 0.6)


def test_without_notify_socket_everything_is_a_no_op() -> None:
    notifier = Notifier({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled
    assert notifier.watchdog is None  # no socket, no watchdog
    assert notifier.send("READY=1") is False
    notifier.ready("x")
    notifier.ping()
    notifier.stopping()
    assert not notifier.ping_due()


def test_a_socket_that_is_gone_is_logged_once_never_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens.sock")})
    assert notifier.send("READY=1") is False
    assert notifier.send("STATUS=again") is False
    assert len([r for r in caplog.records if "sd_notify" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": ""}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "30s"}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"}, None),
    ],
)
def test_watchdog_interval_follows_usec_and_pid(env: dict[str, str], expected: float) -> None:
    assert watchdog_interval(env, pid=4242) == expected


def test_abstract_addresses_start_with_a_nul_byte() -> None:
    assert socket_address("@systemd/notify") == b"\0systemd/notify"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"


# --------------------------------------------------------------------------- liveness


def test_liveness_names_a_watched_worker_thread_that_died() -> None:
    stop = threading.Event()
    workers = [threading.Thread(target=stop.wait, name=n, daemon=True)
               for n in ("installer", "telemetry", "mqtt-dispatch-edgekit-agent-x")]  # fmt: skip
    short = threading.Thread(target=stop.wait, name="replay", daemon=True)
    for t in [*workers, short]:
        t.start()
    live = Liveness(lambda: [*workers, short])
    assert live.arm() == {"installer", "telemetry", "mqtt-dispatch-edgekit-agent-x"}
    assert live.problems() == []
    done = threading.Event()
    telemetry = threading.Thread(target=done.wait, name="telemetry", daemon=True)
    workers[1] = telemetry  # the old telemetry thread is gone; a new one is not started yet
    assert live.problems() == ["telemetry"]
    stop.set()
    for t in workers:
        if t.is_alive():
            t.join(5)
    assert live.problems() == ["installer", "mqtt-dispatch-edgekit-agent-x", "telemetry"]


def test_a_replacement_inference_worker_counts_as_the_same_worker() -> None:
    assert worker_key("mqtt-inference") == worker_key("mqtt-inference-3") == "mqtt-inference"
    assert worker_key("mqtt-inference-watch") == "mqtt-inference-watch"
    assert worker_key("replay") is None
    assert worker_key("shadow") is None
    assert worker_key("Thread-7 (process_request_thread)") is None
