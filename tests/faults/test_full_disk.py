"""A full disk under a real agent: its data dir is a small tmpfs (we mount it; root only)
that the test fills to the last page.

* During outbox writes: the agent keeps answering inference over MQTT, holds telemetry in
  memory while the disk refuses it (also while its broker is partitioned away), writes it
  again once space returns, and after the heal every seq reaches the observer.
* During a bundle download: the download (held in the fault proxy in front of the hub after
  the agent checked the free space) meets the full disk; the deploy fails cleanly with
  "disk full", no partial file is left, v1 keeps serving and the rollout stops.

See docs/faults.md."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge import contract as c
from tests.bundles import raw_digit
from tests.edge.brokers import free_port
from tests.faults.proxy import FaultProxy
from tests.faults.rig import (
    Agent,
    Hub,
    Mqtt,
    PersistentBroker,
    contiguous_to,
    highest,
    outbox_telemetry_seqs,
    seqs_seen,
)
from tests.services import need_service
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
QUEUED = "edgekit_agent_outbox_messages"
TMPFS_SIZE = "4m"
NO_GATES = {"error_rate": None, "drift": None, "accuracy": None, "p95_latency_ms": None}


def _can_mount(probe: Path) -> bool:
    """Root is not enough in every container (CAP_SYS_ADMIN): try a real mount."""
    if os.geteuid() != 0:
        return False
    probe.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "none", str(probe)],
                        capture_output=True).returncode == 0  # fmt: skip
    if ok:
        subprocess.run(["umount", str(probe)], capture_output=True, check=True)
    return ok


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """``tmpfs(name)``: a fresh tmpfs of TMPFS_SIZE mounted at ``tmp_path/name``; all are
    unmounted at teardown (after the test stopped its agents)."""
    need_service(_can_mount(tmp_path / "probe"), "mounting a tmpfs needs root (CAP_SYS_ADMIN)")
    mounted: list[Path] = []

    def mount(name: str) -> Path:
        where = tmp_path / name
        where.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "none", str(where)],
                       check=True, capture_output=True)  # fmt: skip
        mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        if subprocess.run(["umount", str(where)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(directory: Path) -> Path:
    """Fill the file system of ``directory`` to the last byte; returns the filler file."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1):
            block = b"\0" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    assert os.statvfs(directory).f_bavail == 0
    return filler


def test_full_disk_during_outbox_writes(
    tmp_path: Path, broker: PersistentBroker, observer: Mqtt, tmpfs: Callable[[str], Path],
    keys: Any, make_bundle: Any,
) -> None:  # fmt: skip
    dev = "fd-outbox"
    observer.subscribe(c.topic(dev, c.TELEMETRY))
    data = tmpfs(dev)
    with FaultProxy(broker.port) as mqtt_proxy:
        agent = Agent(None, dev, data, mqtt_proxy.url, make_bundle(1), "--keepalive", "2",
                      trusted_key=keys[1], log_dir=tmp_path)  # fmt: skip
        try:
            wait_for(lambda: highest(seqs_seen(observer, dev)) >= 2, 60, "telemetry flowing")
            filler = fill(data)
            full_at = time.monotonic()
            wait_for(lambda: "holding messages in memory" in agent.text(), 30,
                     "the outbox holding messages in memory")  # fmt: skip
            noticed = time.monotonic() - full_at
            res = observer.infer(dev, "disk-full", raw_digit())
            assert res["version"] == 1 and res["label"], res
            # still delivered from memory while connected
            now = highest(seqs_seen(observer, dev))
            wait_for(lambda: highest(seqs_seen(observer, dev)) >= now + 2, 20,
                     "telemetry from memory")  # fmt: skip
            mqtt_proxy.partition("drop")
            wait_for(lambda: "MQTT disconnected" in agent.text(), 15, "the agent noticing")
            last_before = highest(seqs_seen(observer, dev))
            wait_for(lambda: (agent.metric(QUEUED) or 0) >= 6, 30, "telemetry held in memory")
            held = agent.metric(QUEUED) or 0
            assert agent.alive()
            filler.unlink()  # space returns
            wait_for(lambda: "writing again" in agent.text(), 30, "the outbox writing again")
            on_disk = sum(p.stat().st_size for p in (data / "outbox").iterdir())
            mqtt_proxy.heal()
            healed_at = time.monotonic()
            wait_for(lambda: contiguous_to(seqs_seen(observer, dev), last_before + int(held)),
                     30, "every held seq after the heal")  # fmt: skip
            delivered = time.monotonic() - healed_at
            wait_for(lambda: agent.metric(QUEUED) == 0, 20, "the outbox drained")
            assert agent.alive()
        finally:
            agent.stop()
    seen, queued = seqs_seen(observer, dev), outbox_telemetry_seqs(data)
    for boot in set(seen) | set(queued):
        got = seen.get(boot, set()) | queued.get(boot, set())
        assert got == set(range(max(got) + 1)), f"seqs lost in boot {boot}"
    print(
        f"\nfull disk (outbox): noticed {noticed:.1f} s after the fill; {held:.0f} held while "
        f"partitioned; {on_disk} outbox bytes on disk once space returned; all seqs at the "
        f"observer {delivered:.1f} s after the heal; lost 0"
    )


def test_full_disk_during_download(
    tmp_path: Path, broker: PersistentBroker, observer: Mqtt, tmpfs: Callable[[str], Path],
    keys: Any, make_bundle: Any,
) -> None:  # fmt: skip
    dev = "fd-download"
    observer.subscribe(c.topic(dev, c.EVENTS))
    data = tmpfs(dev)
    port = free_port()
    with FaultProxy(port) as http_proxy:
        front = f"http://127.0.0.1:{http_proxy.port}"
        hub = Hub(tmp_path / "hub", broker.url, keys[1], tmp_path / "hub.log",
                  public_url=front, port=port)  # fmt: skip
        agent: Agent | None = None
        filler: Path | None = None
        try:
            v1, v2 = make_bundle(1), make_bundle(2)
            hub.upload(v1)
            hub.upload(v2)
            agent = Agent(hub, dev, data, broker.url, v1, log_dir=tmp_path)
            wait_for(lambda: hub.version_of(dev) == 1, 90, "the agent on v1")
            http_proxy.partition("hold")  # the download will wait in the black hole
            before = http_proxy.stats.accepted
            rid = hub.rollout(2, ["faults"], [100], gates=NO_GATES)
            wait_for(lambda: http_proxy.stats.accepted > before, 30, "the download connecting")
            filler = fill(data)  # after the agent checked the free space
            http_proxy.heal()
            healed_at = time.monotonic()

            def failed() -> dict[str, Any] | None:
                events = observer.on(c.topic(dev, c.EVENTS))
                found = [e for e in events if e.get("step") == "failed"]
                return found[-1] if found else None

            event = wait_for(failed, 60, "the deploy failing")
            failed_in = time.monotonic() - healed_at
            assert "disk full" in event["message"], event
            assert "downloading" in event["message"], event
            r = hub.rollout_ended(rid, timeout=60)
            assert r["state"] in ("paused", "rolled_back", "aborted"), r
            res = observer.infer(dev, "after-full-download", raw_digit())
            assert res["version"] == 1 and res["label"], res  # the old model keeps serving
            downloads = data / "downloads"
            left = list(downloads.iterdir()) if downloads.is_dir() else []
            assert not left, left  # no partial bundle left behind
            filler.unlink()
            filler = None
            assert agent.alive()
            wait_for(lambda: hub.version_of(dev) == 1, 30, "the hub still seeing v1")
        finally:
            if agent is not None:
                agent.stop()
            if filler is not None:
                with contextlib.suppress(OSError):
                    filler.unlink()
            hub.stop()
    print(
        f"\nfull disk (download): deploy failed {failed_in:.2f} s after the bytes flowed: "
        f"{event['message']!r}; rollout {r['state']}; v1 kept serving"
    )
