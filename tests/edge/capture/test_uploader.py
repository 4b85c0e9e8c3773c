"""The uploader: batches with the device token, resumable through outages, throttling and
refusals, against a small real HTTP server (the hub's own endpoint:
tests/cloud/hub/http/test_capture_routes.py)."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.capture import SampleStore, Uploader, retry_after
from edge.capture.uploader import MAX_RETRY_AFTER_S
from tests.edge.capture.hubs import SampleHub
from tests.edge.capture.samples_kit import sample
from tests.waiting import wait_for

DEV = "cam-1"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SampleStore]:
    with SampleStore(tmp_path / "capture", 8 << 20) as s:
        yield s


@pytest.fixture
def hub() -> Iterator[SampleHub]:
    h = SampleHub()
    yield h
    h.close()


def fill(store: SampleStore, n: int, kind: str = "image") -> list[str]:
    ids = []
    for _ in range(n):
        s = sample(kind)
        store.put(s)
        ids.append(s.id)
    return ids


def test_batches_oldest_first_until_empty(store: SampleStore, hub: SampleHub) -> None:
    ids = fill(store, 5)
    up = Uploader(store, DEV, lambda: (hub.url, "dev-token"), batch=lambda: 2)
    passes = [up.upload_once() for _ in range(4)]
    assert [p.sent for p in passes] == [2, 2, 1, 0] and all(p.ok for p in passes)
    assert [s for p in passes for s in p.accepted] == ids
    assert list(hub.stored) == ids and store.stats()["pending"] == 0
    assert store.stats()["uploaded"] == 5
    assert hub.requests[0]["device"] == DEV and len(hub.requests[0]["samples"]) == 2


def test_not_enrolled_keeps_everything(store: SampleStore) -> None:
    fill(store, 2)
    result = Uploader(store, DEV, lambda: None).upload_once()
    assert result.sent == 0 and "not enrolled" in (result.error or "")
    assert store.stats()["pending"] == 2


def test_outage_then_resume(store: SampleStore, tmp_path: Path) -> None:
    """The hub goes away mid-way: nothing is lost, and the next passes finish the job;
    a sample the hub stored but whose answer was lost comes back as a duplicate."""
    first = SampleHub()
    port = first.port
    ids = fill(store, 4)
    up = Uploader(store, DEV, lambda: (f"http://127.0.0.1:{port}", "dev-token"), batch=lambda: 2)
    assert up.upload_once().accepted == ids[:2]
    first.close()  # outage: connection refused
    down = up.upload_once()
    assert down.sent == 2 and down.status is None and "unreachable" in (down.error or "")
    assert store.stats()["pending"] == 2
    back = SampleHub(port=port)
    try:
        back.stored[ids[2]] = {}  # stored before the outage, its answer never arrived
        done = up.upload_once()
        assert done.duplicates == [ids[2]] and done.accepted == [ids[3]]
        assert store.stats() | {"pending_bytes": 0} == {
            "captured": 4, "dropped": 0, "uploaded": 4, "rejected": 0, "pending": 0,
            "pending_bytes": 0, "requested": 0,
        }  # fmt: skip
    finally:
        back.close()


def test_wrong_token_keeps_samples(store: SampleStore, hub: SampleHub) -> None:
    fill(store, 1)
    result = Uploader(store, DEV, lambda: (hub.url, "stolen")).upload_once()
    assert result.status == 401 and "bad token" in (result.error or "")
    assert store.stats()["pending"] == 1


def test_throttled_waits_what_the_hub_says(store: SampleStore, hub: SampleHub) -> None:
    fill(store, 2)
    hub.script = lambda _doc: (429, {"Retry-After": "7"}, {"error": {"message": "slow down"}})
    up = Uploader(store, DEV, lambda: (hub.url, "dev-token"), interval=lambda: 1.0)
    result = up.upload_once()
    assert result.status == 429 and result.retry_after == 7.0
    assert up._next_delay(result) == (7.0, True)  # a hold: new samples do not cut it short
    assert store.stats()["pending"] == 2 and up.stats["throttled"] == 1
    hub.script = lambda _doc: None
    assert len(up.upload_once().accepted) == 2


def test_backoff_doubles_and_resets(store: SampleStore) -> None:
    fill(store, 1)
    up = Uploader(store, DEV, lambda: ("http://127.0.0.1:9", "t"), interval=lambda: 10.0)
    delays = [up._next_delay(up.upload_once())[0] for _ in range(7)]
    assert delays == [10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]


def test_too_large_batches_are_halved(store: SampleStore, hub: SampleHub) -> None:
    ids = fill(store, 8)

    def small_only(doc: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]] | None:
        if len(doc["samples"]) > 2:
            return 413, {}, {"error": {"code": "too_large", "message": "too many"}}
        return None

    hub.script = small_only
    up = Uploader(store, DEV, lambda: (hub.url, "dev-token"), batch=lambda: 8)
    for _ in range(20):
        if not store.stats()["pending"]:
            break
        up.upload_once()
    assert list(hub.stored) == ids and store.stats()["rejected"] == 0


def test_one_poisoned_sample_is_isolated_and_dropped(store: SampleStore, hub: SampleHub) -> None:
    ids = fill(store, 5)
    poison = ids[2]

    def refuse_poison(doc: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]] | None:
        if any(s["id"] == poison for s in doc["samples"]):
            return 400, {}, {"error": {"code": "invalid", "message": "cannot read this"}}
        return None

    hub.script = refuse_poison
    up = Uploader(store, DEV, lambda: (hub.url, "dev-token"), batch=lambda: 8)
    for _ in range(20):
        if not store.stats()["pending"]:
            break
        up.upload_once()
    assert sorted(hub.stored) == sorted(set(ids) - {poison})
    assert store.stats()["rejected"] == 1 and store.stats()["uploaded"] == 4


def test_rejected_by_the_receipt(store: SampleStore, hub: SampleHub) -> None:
    ids = fill(store, 2)
    receipt = {"accepted": [ids[0]], "duplicates": [],
               "rejected": [{"id": ids[1], "error": "unknown model"}]}  # fmt: skip
    hub.script = lambda _doc: (200, {}, receipt)
    result = Uploader(store, DEV, lambda: (hub.url, "dev-token")).upload_once()
    assert (result.accepted, result.rejected) == ([ids[0]], [ids[1]])
    assert store.stats()["rejected"] == 1 and store.stats()["pending"] == 0


def test_an_unreadable_answer_keeps_samples(store: SampleStore, hub: SampleHub) -> None:
    fill(store, 1)
    hub.script = lambda _doc: (200, {}, {"accepted": "all"})
    result = Uploader(store, DEV, lambda: (hub.url, "dev-token")).upload_once()
    assert "not an upload receipt" in (result.error or "")
    assert store.stats()["pending"] == 1


def test_background_thread_drains(store: SampleStore, hub: SampleHub) -> None:
    up = Uploader(store, DEV, lambda: (hub.url, "dev-token"), batch=lambda: 3,
                  interval=lambda: 3600.0)  # fmt: skip
    up.start()
    try:
        ids = fill(store, 7)
        up.wake()
        wait_for(lambda: len(hub.stored) == 7, what="all samples uploaded")
        assert list(hub.stored) == ids
    finally:
        up.stop()


def test_retry_after_forms() -> None:
    assert retry_after("12") == 12.0
    assert retry_after(None) == 1.0 and retry_after("soon") == 1.0
    assert retry_after("-4") == 0.0 and retry_after("99999") == MAX_RETRY_AFTER_S
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= retry_after(when) <= 31
