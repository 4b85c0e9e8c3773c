"""A wave that finishes in a tick orders its successor's devices in the same tick: with no
soak, a 3-wave rollout takes one tick per wave, not two (the idle tick per wave was a sixth
of a 100-device rollout at a 1 s tick)."""

from __future__ import annotations

from cloud.hub.rollout.core.machine import advance
from cloud.hub.rollout.service import advance_through
from tests.cloud.hub.fleet import deliver, observations
from tests.cloud.hub.rollout.test_rollout import fleet_of, spec, started


def test_the_next_wave_is_ordered_in_the_tick_the_last_one_finished() -> None:
    fleet = fleet_of(6)
    r = started(spec(waves=[34, 67, 100], soak_seconds=0))
    r, orders = advance_through(r, observations(fleet), 1.0)
    assert [o.device for o in orders] == ["d00", "d01", "d02"][: len(orders)] and orders
    first = len(orders)
    deliver(fleet, orders)
    # plain advance: the wave commits but its successor's orders wait for the next tick
    slow, none = advance(r, observations(fleet), 2.0)
    assert none == [] and slow.state == "running"
    r, orders = advance_through(r, observations(fleet), 2.0)
    assert r.current_wave == 1 and len(orders) > 0
    assert {o.device for o in orders}.isdisjoint({f"d{i:02d}" for i in range(first)})
    deliver(fleet, orders)
    r, orders = advance_through(r, observations(fleet), 3.0)
    assert r.current_wave == 2 and orders
    deliver(fleet, orders)
    r, orders = advance_through(r, observations(fleet), 4.0)
    assert r.state == "completed" and orders == []


def test_a_soak_still_holds_the_next_wave() -> None:
    fleet = fleet_of(4)
    r = started(spec(waves=[50, 100], soak_seconds=5))
    r, orders = advance_through(r, observations(fleet), 1.0)
    deliver(fleet, orders)
    r, orders = advance_through(r, observations(fleet), 2.0)
    assert orders == [] and r.current_wave == 0 and r.waiting_for == "soak"
    r, orders = advance_through(r, observations(fleet), 7.0)
    assert r.current_wave == 1 and sorted(o.device for o in orders) == ["d02", "d03"]


def test_a_paused_rollout_orders_nothing_more() -> None:
    fleet = fleet_of(4, fails=True)
    r = started(spec(waves=[50, 100], soak_seconds=0, error_threshold=0.0))
    r, orders = advance_through(r, observations(fleet), 1.0)
    deliver(fleet, orders)
    r, orders = advance_through(r, observations(fleet), 2.0)
    assert r.state == "paused" and orders == []
