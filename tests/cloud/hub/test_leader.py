"""The scheduler lease and the leader built on it (cloud/hub/leader.py), on SQLite and on the
machine's PostgreSQL: one holder at a time, expiry by the database's clock (a worker whose
clock is skewed cannot steal the lease), a paused leader stops leading before anyone can
take over, a clean stop hands over at once, and ``GET /healthz`` reports all of it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud.hub.app import create_app
from cloud.hub.config import HubConfig
from cloud.hub.leader import DRIFT_MARGIN, SCHEDULER_LEASE, Leader, leader_of, lease_ttl
from cloud.hub.storage import Database, leases
from tests import waiting
from tests.cloud.hub.pg_schema import throwaway_schema
from tests.edge.brokers import free_port


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)],
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
        return
    with throwaway_schema("leader") as url:
        yield url


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    db.migrate()
    yield db
    db.dispose()


class FakeClock:
    """A monotonic clock the test moves (a paused process sees time jump)."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_one_holder_at_a_time_and_release_hands_over(database: Database) -> None:
    assert leases.holder_of(database, "job").holder is None
    assert leases.try_acquire(database, "job", 30, "a")
    assert leases.try_acquire(database, "job", 30, "a")  # renewal
    assert not leases.try_acquire(database, "job", 30, "b")
    info = leases.holder_of(database, "job")
    assert info.holder == "a" and info.held and 25 < info.expires - info.now <= 30
    leases.release(database, "job", "b")  # not b's to release
    assert leases.holder_of(database, "job").holder == "a"
    leases.release(database, "job", "a")
    assert not leases.holder_of(database, "job").held
    assert leases.try_acquire(database, "job", 30, "b")
    with pytest.raises(ValueError, match="positive"):
        leases.try_acquire(database, "job", 0, "a")


def test_a_worker_with_a_skewed_clock_cannot_take_a_held_lease(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Expiry is the database's clock: a worker an hour ahead still sees the lease held."""
    assert leases.try_acquire(database, "job", 30, "a")
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 3600)
    assert not leases.try_acquire(database, "job", 30, "b")
    monkeypatch.setattr(time, "time", lambda: real() - 3600)  # and one behind renews fine
    assert leases.try_acquire(database, "job", 30, "a")
    assert leases.holder_of(database, "job").holder == "a"


def test_an_expired_lease_goes_to_the_first_taker(database: Database) -> None:
    assert leases.try_acquire(database, "job", 0.2, "a")
    waiting.wait_for(lambda: leases.try_acquire(database, "job", 30, "b"), 10, "b takes over")
    assert not leases.try_acquire(database, "job", 30, "a")
    assert leases.holder_of(database, "job").holder == "b"


def test_a_paused_leader_stops_leading_before_anyone_can_take_over(database: Database) -> None:
    clock = FakeClock()
    a = Leader(database, 1.0, holder="a", clock=clock)
    b = Leader(database, 1.0, holder="b")
    assert a.renew() and a.is_leader
    assert not b.renew() and not b.is_leader
    # a is paused (no renewal) until its own clock says its lease may be gone ...
    clock.t += 1.0 * (1 - DRIFT_MARGIN)
    assert not a.is_leader
    # ... which is before the database lets b in (expiry is at least t0 + ttl there)
    info = leases.holder_of(database, SCHEDULER_LEASE)
    assert info.holder == "a"
    waiting.wait_for(b.renew, 10, "b takes the lapsed lease")
    assert b.is_leader and not a.is_leader
    assert not a.renew()  # a resumes and learns it lost; it does not lead again
    assert not a.is_leader and b.is_leader


def test_an_unreachable_database_keeps_the_earned_deadline_only(database: Database) -> None:
    clock = FakeClock()
    a = Leader(database, 3.0, holder="a", clock=clock)
    assert a.renew()
    a.db = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/none")  # nothing listens
    assert a.renew() and a.is_leader  # no answer is not a "no": the deadline still holds
    assert a.last_error is not None and "OperationalError" in a.last_error
    clock.t += 3.0
    assert not a.renew() and not a.is_leader


def test_stop_releases_the_lease_so_a_follower_takes_over_at_once(database: Database) -> None:
    a = Leader(database, 30.0, holder="a").start()
    waiting.wait_for(lambda: a.is_leader, 10, "a leads")
    b = Leader(database, 30.0, holder="b")
    assert not b.renew()
    a.stop()
    assert not a.is_leader
    assert b.renew()  # no 30 s wait for the expiry
    with pytest.raises(ValueError):
        Leader(database, -1)


def test_lease_ttl_allows_a_takeover_within_15_s() -> None:
    assert lease_ttl(1.0) == 5.0 and lease_ttl(0.2) == 5.0 and lease_ttl(2.0) == 10.0
    assert lease_ttl(1.0) * 4 / 3 < 15  # expiry plus one follower renewal period


# --------------------------------------------------------------------------- /healthz


def _hub(tmp_path: Path, db_url: str, name: str, keys: Any) -> Any:
    cfg = HubConfig(data_dir=tmp_path / name, db_url=db_url, trusted_key=keys[1],
                    background=True, testing=True)  # fmt: skip
    return create_app(cfg)


def _health(app: Any) -> tuple[int, dict[str, Any]]:
    resp = app.test_client().get("/healthz")
    assert resp.headers["Cache-Control"] == "no-store"
    return resp.status_code, resp.get_json()


def test_healthz_names_the_leader_and_follows_a_handover(
    tmp_path: Path, db_url: str, keys: Any
) -> None:
    first = _hub(tmp_path, db_url, "one", keys)
    second = _hub(tmp_path, db_url, "two", keys)
    apps = [first, second]
    try:
        code, one = _health(first)
        assert code == 200 and one["status"] == "ok" and one["db"] == "ok"
        assert one["leader"] is True and one["leader_worker"] == one["worker"]
        assert one["broker"] == "none"  # no broker configured
        code, two = _health(second)
        assert code == 200 and two["leader"] is False
        assert two["leader_worker"] == one["worker"] != two["worker"]
        assert leader_of(first.extensions["edgekit_hub"]) is not None
        first.extensions["edgekit_hub"].stop()  # a clean shutdown hands the lease back
        apps.remove(first)
        renew = lease_ttl(1.0) / 3
        taken = waiting.wait_for(lambda: _health(second)[1]["leader"], renew + 5, "takeover")
        assert taken is True
        assert _health(second)[1]["leader_worker"] == two["worker"]
    finally:
        for app in apps:
            app.extensions["edgekit_hub"].stop()
            app.extensions["edgekit_hub"].db.dispose()


def test_healthz_is_503_when_the_database_is_unreachable(
    tmp_path: Path, db_url: str, keys: Any
) -> None:
    cfg = HubConfig(data_dir=tmp_path / "h", db_url=db_url, trusted_key=keys[1],
                    background=False, testing=True)  # fmt: skip
    app = create_app(cfg)
    state = app.extensions["edgekit_hub"]
    code, body = _health(app)
    assert code == 200 and body["leader"] is False and body["leader_worker"] is None
    good = state.db
    state.db = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    try:
        code, body = _health(app)
        assert code == 503
        assert body["status"] == "unavailable" and body["db"] == "unreachable"
        assert body["leader"] is False and isinstance(body["worker"], str)
    finally:
        state.db = good
        good.dispose()
