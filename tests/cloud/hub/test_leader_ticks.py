"""Two hub processes ticking the same rollout at once never send a device two deploys.

The leader lease keeps that from happening normally; this is the case the design relies on
when it does not (a leader paused past its lease, clock trouble): two rollout services with
their own engines on one PostgreSQL schema, as two hub processes have. The rollout row lock
(``SELECT ... FOR UPDATE``) serialises their ticks, each reads what the other committed,
and a command is published only after the transaction that recorded it committed, so a
ticker that stalls between its commit and its publish (a paused process) only sends late
what no one else sent.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud.hub.app import create_app
from cloud.hub.config import HubConfig
from cloud.hub.http.auth import create_api_token
from tests import waiting
from tests.cloud.hub.helpers import event, feed, status
from tests.cloud.hub.http.test_api import upload
from tests.cloud.hub.pg_schema import throwaway_schema

pytestmark = pytest.mark.integration
DEVICES = [f"dev-{i:02d}" for i in range(12)]


class Recorder:
    """A publisher that records what one service sent; ``hold`` stalls its next publish."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        self.hold: threading.Event | None = None
        self.holding = threading.Event()

    def __call__(self, device: str, cmd: Any) -> None:
        hold, self.hold = self.hold, None
        if hold is not None:
            self.holding.set()
            hold.wait(30)
        with self.lock:
            self.sent.append((device, cmd))


@pytest.fixture
def pair(tmp_path: Path, keys: Any) -> Iterator[list[Any]]:
    with throwaway_schema("ticks") as url:
        common = {"db_url": url, "trusted_key": keys[1], "background": False, "testing": True}
        configs = [HubConfig(data_dir=tmp_path / n, **common) for n in ("a", "b")]
        apps = [create_app(cfg) for cfg in configs]
        try:
            yield apps
        finally:
            for app in apps:
                app.extensions["edgekit_hub"].db.dispose()


def test_concurrent_and_stalled_ticks_send_each_deploy_once(
    pair: list[Any], make_bundle: Any
) -> None:
    a = pair[0]
    client = a.test_client()
    with a.extensions["edgekit_hub"].db.session() as s:
        h = {"Authorization": f"Bearer {create_api_token(s, 'operator', 'op')}"}
    for v in (1, 2):
        assert upload(client, h, make_bundle(v)).status_code == 201
    feed(a, *(status(d, 1, 1) for d in DEVICES))
    services = [app.extensions["edgekit_hub"].service for app in pair]
    recorders = [Recorder(), Recorder()]
    for service, rec in zip(services, recorders, strict=True):
        service.publisher = rec
    waves = [25, 50, 60, 70, 80, 90, 100]
    body = {"model": "digits", "version": 2, "target": {"all": True}, "waves": waves,
            "soak_seconds": 0, "error_threshold": 0, "gates": {}}  # fmt: skip
    resp = client.post("/api/v1/rollouts", json=body, headers=h)
    assert resp.status_code == 201, resp.get_json()
    rid = resp.get_json()["id"]

    # 1. a stalls between its commit and its publish (a paused process); b keeps ticking
    answered: set[str] = set()
    _answer(a, recorders, rid, answered)  # wave 1 (sent by the API request) commits
    assert len(recorders[0].sent) == 3
    recorders[0].hold = release = threading.Event()

    def stall() -> None:  # tick until a tick has wave 2 to publish, and stall there
        while not recorders[0].holding.is_set():
            services[0].tick()

    stalled = threading.Thread(target=stall)
    stalled.start()
    waiting.wait_for(recorders[0].holding.is_set, 20, "a's tick stalled before publishing")
    for _ in range(5):
        assert services[1].tick() == 0  # b sees a's committed orders: nothing to send
    release.set()
    stalled.join(30)
    assert len(recorders[0].sent) == 6 and not recorders[1].sent  # sent late, once

    # 2. both tick at once until the rollout completes, devices answering every command
    done = threading.Event()

    def ticking(service: Any) -> None:
        while not done.is_set():
            service.tick()

    threads = [threading.Thread(target=ticking, args=(s,)) for s in services]
    for t in threads:
        t.start()
    try:

        def finished() -> bool:
            _answer(a, recorders, rid, answered)
            state = client.get(f"/api/v1/rollouts/{rid}", headers=h).get_json()["state"]
            return bool(state == "completed")

        waiting.wait_for(finished, 60, "the rollout completes", interval=0.1)
    finally:
        done.set()
        for t in threads:
            t.join(30)
    sent = _deploys(recorders)
    assert set(sent) == set(DEVICES)
    assert all(n == 1 for n in sent.values()), sent  # one deploy per device, no duplicate
    ids = [cmd.id for rec in recorders for _d, cmd in rec.sent]
    assert len(ids) == len(set(ids))


def _deploys(recorders: list[Recorder]) -> Counter[str]:
    return Counter(d for rec in recorders for d, cmd in list(rec.sent) if cmd.kind == "deploy")


def _answer(app: Any, recorders: list[Recorder], rid: str, answered: set[str]) -> None:
    """Every device commits the deploy it was sent, as an agent would report it."""
    msgs = []
    for rec in recorders:
        with rec.lock:
            new = [(d, cmd) for d, cmd in rec.sent if cmd.id not in answered]
        for device, cmd in new:
            answered.add(cmd.id)
            msgs += [event(device, 2, "committed", rid, cmd.id, 2), status(device, 2, 3)]
    if msgs:
        feed(app, *msgs)
