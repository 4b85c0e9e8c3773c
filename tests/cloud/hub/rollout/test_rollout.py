"""The pure rollout state machine: waves, thresholds, gates, actions, rollback."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloud.hub.rollout import RolloutError
from cloud.hub.rollout.core import RolloutSpec
from cloud.hub.rollout.core.machine import (
    Order,
    RolloutState,
    act,
    advance,
    new_rollout,
)
from tests.cloud.hub.fleet import SimDevice, deliver, observations


def spec(**kw: object) -> RolloutSpec:
    body = {"model": "digits", "version": 2, "target": {"tags": ["lab"]}, "waves": [50, 100]}
    body.update(kw)
    return RolloutSpec.parse(body)


def started(s: RolloutSpec) -> RolloutState:
    r, orders = act(new_rollout("r1", s, 0.0), "start", 0.0, actor="test")
    assert orders == []
    return r


def run(
    r: RolloutState, fleet: list[SimDevice], t0: float, steps: int, dt: float = 1.0
) -> tuple[RolloutState, list[tuple[int, list[Order]]], float]:
    """Tick ``steps`` times, delivering orders to the simulated fleet after each tick."""
    all_orders = []
    t = t0
    for _ in range(steps):
        r, orders = advance(r, observations(fleet), t)
        deliver(fleet, orders)
        all_orders.append((r.current_wave, orders))
        t += dt
    return r, all_orders, t


def fleet_of(n: int, **kw: object) -> list[SimDevice]:
    return [SimDevice(f"d{i:02d}", **kw) for i in range(n)]  # type: ignore[arg-type]


# --------------------------------------------------------------------------- spec parsing


@pytest.mark.parametrize(
    "patch, message",
    [
        ({"model": ""}, "'model'"),
        ({"version": 0}, "'version'"),
        ({"version": True}, "'version'"),
        ({"target": {}}, "names no devices"),
        ({"target": {"tags": "lab"}}, "target.tags"),
        ({"target": {"color": ["x"]}}, "unknown target"),
        ({"waves": []}, "'waves'"),
        ({"waves": [50, 10]}, "strictly increase"),
        ({"waves": [0]}, "between"),
        ({"waves": [101]}, "between"),
        ({"waves": [10, {"count": 3}]}, "all percentages or all counts"),
        ({"waves": ["x"]}, "percentage"),
        ({"error_action": "explode"}, "error_action"),
        ({"success_threshold": 2}, "success_threshold"),
        ({"gates": {"speed": 1}}, "unknown gate"),
        ({"gates": {"drift": -1}}, "gates.drift"),
        ({"soak_seconds": "1"}, "soak_seconds"),
        ({"bogus": 1}, "unknown rollout field"),
        ({"gates": []}, "'gates' must be an object"),
        ({"gates": {"p95_latency_ms": {"relative": -1}}}, r"gates.p95_latency_ms.relative"),
        ({"gates": {"p95_latency_ms": {"tolerance": 1}}}, r"unknown field\(s\) tolerance"),
        ({"gates": {"p95_latency_ms": {"min_increase_ms": "5"}}}, "min_increase_ms"),
        ({"gates": {"error_rate": {"relative": 0.1}}}, r"gates.error_rate: use tolerance"),
        ({"gates": {"accuracy": {"min_inferences": -1}}}, "accuracy.min_inferences"),
        ({"gates": {"drift": {"min_inferences": 2.5}}}, "drift.min_inferences"),
        ({"gates": {"drift": "0.1"}}, "gates.drift"),
        ({"p95_latency_min_increase_ms": -1}, "p95_latency_min_increase_ms"),
        ({"gate_min_inferences": 1.5}, "gate_min_inferences"),
        ({"gate_min_inferences": True}, "gate_min_inferences"),
    ],
)
def test_bad_specs_are_refused_with_a_clear_message(patch: dict, message: str) -> None:
    body = {"model": "digits", "version": 2, "target": {"tags": ["lab"]}}
    body.update(patch)
    with pytest.raises(RolloutError, match=message):
        RolloutSpec.parse(body)


def test_spec_round_trips_through_to_dict() -> None:
    s = spec(waves=[{"count": 1}, {"count": 3}], gates={"accuracy": None, "drift": 0.2})
    assert RolloutSpec.parse(s.to_dict()) == s
    assert [g.metric for g in s.gates] == ["error_rate", "p95_latency_ms", "drift"]


def test_gate_forms_number_and_object() -> None:
    s = spec(
        gates={
            "p95_latency_ms": {"relative": 0.2, "min_increase_ms": 1.5, "min_inferences": 10},
            "error_rate": {"tolerance": 0.01},
            "drift": 0.3,
        },
        p95_latency_min_increase_ms=4,
        gate_min_inferences=200,
    )
    g = {x.metric: x for x in s.gates}
    assert (g["p95_latency_ms"].tolerance, g["p95_latency_ms"].min_increase) == (0.2, 1.5)
    assert g["p95_latency_ms"].min_inferences == 10
    assert (g["error_rate"].tolerance, g["error_rate"].min_inferences) == (0.01, 200)
    assert (g["drift"].tolerance, g["drift"].min_increase, g["drift"].min_inferences) == (
        0.3, 0.0, 200,
    )  # fmt: skip
    assert g["accuracy"].tolerance == 0.05  # missing gates keep their default tolerance
    out = s.to_dict()
    assert out["gates"]["drift"] == 0.3 and out["gates"]["error_rate"] == 0.01  # defaults apply
    assert out["gates"]["p95_latency_ms"] == {
        "relative": 0.2, "min_increase_ms": 1.5, "min_inferences": 10,
    }  # fmt: skip
    assert (out["p95_latency_min_increase_ms"], out["gate_min_inferences"]) == (4.0, 200)
    assert RolloutSpec.parse(out) == s


def test_a_number_gate_takes_the_spec_level_floor_and_minimum() -> None:
    # The request shape clients sent before floors existed keeps working.
    s = spec(gates={"p95_latency_ms": 2.0})
    g = next(x for x in s.gates if x.metric == "p95_latency_ms")
    assert (g.tolerance, g.min_increase, g.min_inferences) == (2.0, 5.0, 50)
    assert s.to_dict()["gates"]["p95_latency_ms"] == 2.0
    g = next(x for x in spec(p95_latency_min_increase_ms=0.5).gates if x.metric == "p95_latency_ms")
    assert (g.tolerance, g.min_increase) == (0.5, 0.5)
    # A spec stored before these keys existed parses with the defaults.
    old = s.to_dict()
    del old["p95_latency_min_increase_ms"], old["gate_min_inferences"]
    assert RolloutSpec.parse(old) == s


def test_wave_sizes_are_cumulative_and_round_up() -> None:
    s = spec(waves=[10, 50, 100])
    assert [w.cumulative(7) for w in s.waves] == [1, 4, 7]
    assert [w.cumulative(0) for w in s.waves] == [0, 0, 0]


# --------------------------------------------------------------------------- happy path


def test_waves_progress_after_commits_and_soak_then_complete() -> None:
    fleet = fleet_of(4)
    r = started(spec(soak_seconds=5))
    r, orders = advance(r, observations(fleet), 1.0)
    assert [o.device for o in orders] == ["d00", "d01"]  # 50 % of 4
    assert all(o.kind == "deploy" and o.version == 2 for o in orders)
    deliver(fleet, orders)
    r, orders = advance(r, observations(fleet), 2.0)
    assert orders == [] and r.waves[0].soak_started == 2.0 and r.current_wave == 0
    r, orders = advance(r, observations(fleet), 6.9)
    assert r.current_wave == 0 and r.waiting_for == "soak"
    r, orders = advance(r, observations(fleet), 7.0)
    assert r.current_wave == 1
    r, orders = advance(r, observations(fleet), 7.5)
    assert sorted(o.device for o in orders) == ["d02", "d03"]
    deliver(fleet, orders)
    r, _, _ = run(r, fleet, 8.0, 10)
    assert r.state == "completed"
    assert [a.to_state for a in r.audit][-1] == "completed"
    assert all(d.status == "committed" for d in r.deployments.values())


def test_commit_needs_the_device_to_report_the_version() -> None:
    fleet = fleet_of(1)
    r = started(spec(waves=[100]))
    r, orders = advance(r, observations(fleet), 1.0)
    # The device says "committed" but still reports v1 (status not updated yet).
    from cloud.hub.rollout.core.machine import StepReport

    fleet[0].step = StepReport("committed", orders[0].command_id, 2)
    r, _ = advance(r, observations(fleet), 2.0)
    assert r.deployments["d00"].status == "pending"
    fleet[0].model = ("digits", 2)
    r, _ = advance(r, observations(fleet), 3.0)
    assert r.deployments["d00"].status == "committed"


def test_devices_already_on_the_version_need_no_order_and_newer_ones_are_skipped() -> None:
    fleet = [SimDevice("a", model=("digits", 2)), SimDevice("b", model=("digits", 3))]
    r = started(spec(waves=[100]))
    r, orders = advance(r, observations(fleet), 1.0)
    assert orders == []
    assert r.deployments["a"].status == "current" and not r.deployments["a"].updated_by_rollout
    assert r.deployments["b"].status == "skipped"
    r, _ = advance(r, observations(fleet), 2.0)
    assert r.state == "completed"


def test_devices_joining_the_target_while_running_are_included() -> None:
    fleet = fleet_of(2)
    r = started(spec(waves=[100]))
    r, orders = advance(r, observations(fleet), 1.0)
    deliver(fleet, orders)
    fleet.append(SimDevice("late"))
    r, orders = advance(r, observations(fleet), 2.0)
    assert [o.device for o in orders] == ["late"]


def test_untargeted_devices_are_left_alone() -> None:
    fleet = [SimDevice("in"), SimDevice("out", tags=("prod",))]
    r = started(spec(waves=[100]))
    r, _, _ = run(r, fleet, 1.0, 5)
    assert set(r.deployments) == {"in"} and fleet[1].history == []


def test_empty_target_waits_for_devices() -> None:
    r = started(spec(waves=[100]))
    r, orders = advance(r, {}, 1.0)
    assert r.state == "running" and orders == [] and r.waiting_for == "devices"


# --------------------------------------------------------------------------- thresholds


def test_error_threshold_pauses_and_records_why() -> None:
    fleet = fleet_of(4)
    fleet[0].fails = True
    r = started(spec(error_threshold=0.0))
    r, _, _ = run(r, fleet, 1.0, 3)
    assert r.state == "paused"
    assert "failed" in r.audit[-1].reason and r.audit[-1].action == "auto_pause"
    r2, orders = advance(r, observations(fleet), 100.0)
    assert orders == [] and r2.state == "paused"  # paused rollouts order nothing


def test_error_threshold_with_rollback_sends_devices_back() -> None:
    fleet = fleet_of(4)
    fleet[1].fails = True
    r = started(spec(error_threshold=0.0, error_action="rollback"))
    r, history, _ = run(r, fleet, 1.0, 3)
    assert r.state == "rolled_back"
    assert fleet[0].model == ("digits", 1)
    rollbacks = [o for _, orders in history for o in orders if o.kind == "rollback"]
    # d01 never left v1 (its install failed), so only d00 needs an order.
    assert [(o.device, o.version) for o in rollbacks] == [("d00", 1)]
    assert r.deployments["d01"].status == "reverted"


def test_failures_within_the_error_threshold_keep_going() -> None:
    fleet = fleet_of(4)
    fleet[3].fails = True
    r = started(spec(waves=[100], error_threshold=0.5, success_threshold=0.75))
    r, _, _ = run(r, fleet, 1.0, 4)
    assert r.state == "completed"
    assert r.deployments["d03"].status == "failed"


def test_success_threshold_holds_the_next_wave() -> None:
    fleet = fleet_of(4)
    fleet[0].obey = lambda order: fleet[0].history.append(order)  # type: ignore[method-assign]
    r = started(spec(success_threshold=1.0, error_threshold=0.9, deploy_timeout_s=50))
    r, _, t = run(r, fleet, 1.0, 10)
    assert r.current_wave == 0 and r.waiting_for == "devices"
    r, _, _ = run(r, fleet, t + 60, 2)  # the silent device times out -> failed
    assert r.deployments["d00"].status == "failed"
    assert "no commit within" in r.deployments["d00"].reason


def test_online_devices_go_first() -> None:
    fleet = fleet_of(4)
    fleet[0].online = fleet[1].online = False
    r = started(spec())
    r, orders = advance(r, observations(fleet), 1.0)
    assert [o.device for o in orders] == ["d02", "d03"]


def test_deploy_timeout_counts_as_failure() -> None:
    fleet = fleet_of(1)
    fleet[0].obey = lambda order: None  # type: ignore[method-assign]
    r = started(spec(waves=[100], deploy_timeout_s=10))
    r, _, _ = run(r, fleet, 0.0, 12)
    assert r.state == "paused" and r.deployments["d00"].status == "failed"


def test_device_side_rollback_is_seen_as_failure() -> None:
    fleet = fleet_of(2)
    r = started(spec(waves=[100], soak_seconds=100, error_threshold=0.0))
    r, _, t = run(r, fleet, 0.0, 2)
    assert all(d.status == "committed" for d in r.deployments.values())
    fleet[0].model = ("digits", 1)  # the agent's probation rolled it back
    r, _ = advance(r, observations(fleet), t)
    assert r.deployments["d00"].status == "failed" and r.state == "paused"


# --------------------------------------------------------------------------- health gates


def test_latency_gate_compares_with_the_previous_version() -> None:
    fleet = fleet_of(4, p95=1.0)
    r = started(spec(gates={"p95_latency_ms": 0.5}, soak_seconds=30, p95_latency_min_increase_ms=0))
    r, orders = advance(r, observations(fleet), 1.0)
    for d in fleet[:2]:
        d.p95 = 1.4  # within 50 %
    deliver(fleet, orders)
    r, _ = advance(r, observations(fleet), 2.0)
    gate = next(g for g in r.gates if g["metric"] == "p95_latency_ms")
    assert gate["ok"] is True and gate["baseline"] == 1.0 and gate["threshold"] == 1.5
    fleet[0].p95 = fleet[1].p95 = 3.0
    r, _ = advance(r, observations(fleet), 3.0)
    assert r.state == "paused" and "p95_latency_ms" in r.audit[-1].reason


def test_error_rate_gate_triggers_rollback_when_configured() -> None:
    fleet = fleet_of(2)
    r = started(spec(error_action="rollback", soak_seconds=60))
    r, orders = advance(r, observations(fleet), 1.0)
    deliver(fleet, orders)
    fleet[0].error_rate = 0.5
    r, orders = advance(r, observations(fleet), 2.0)
    assert r.state == "rolled_back" and "error_rate" in r.audit[-1].reason
    assert [(o.device, o.kind, o.version) for o in orders] == [("d00", "rollback", 1)]


def test_gates_without_data_neither_pass_nor_fail() -> None:
    fleet = fleet_of(1, model=None)
    r = started(spec(waves=[100]))
    r, _, _ = run(r, fleet, 0.0, 3)
    assert r.state == "completed"


def gate_row(r: RolloutState, metric: str) -> dict:
    return next(g for g in r.gates if g["metric"] == metric)


def test_latency_gate_ignores_a_large_relative_rise_below_the_floor() -> None:
    # The demo case: an MLP at 0.54 ms replaced by a CNN at 1.9 ms is +250 %, and healthy.
    fleet = fleet_of(2, p95=0.54)
    r = started(spec(waves=[50, 100], soak_seconds=30, gates={"p95_latency_ms": 2.0}))
    r, orders = advance(r, observations(fleet), 1.0)
    deliver(fleet, orders)
    fleet[0].p95 = 1.9
    r, _ = advance(r, observations(fleet), 2.0)
    g = gate_row(r, "p95_latency_ms")
    assert r.state == "running" and g["ok"] is True
    assert g["threshold"] == pytest.approx(5.54) and g["min_increase"] == 5.0
    fleet[0].p95 = 6.0  # +5.46 ms and +1000 %: both limits exceeded
    r, _ = advance(r, observations(fleet), 3.0)
    assert r.state == "paused" and "p95_latency_ms" in r.audit[-1].reason
    assert "at least +5 ms" in r.audit[-1].reason


@pytest.mark.parametrize(
    "gate, base, cand, ok",
    [
        ({"relative": 0.2, "min_increase_ms": 5}, 100.0, 140.0, False),  # +40 %, +40 ms
        ({"relative": 0.2, "min_increase_ms": 5}, 10.0, 14.5, True),  # +45 % but +4.5 ms
        ({"relative": 0.2, "min_increase_ms": 5}, 100.0, 119.0, True),  # +19 ms but +19 %
        ({"relative": 0.5, "min_increase_ms": 0}, 1.0, 1.6, False),  # floor off: relative only
        (0.5, 1.0, 1.6, True),  # a number: the default 5 ms floor
    ],
)
def test_latency_gate_fails_only_when_both_increases_exceed(
    gate: object, base: float, cand: float, ok: bool
) -> None:
    fleet = fleet_of(2, p95=base)
    r = started(spec(waves=[50, 100], soak_seconds=30, gates={"p95_latency_ms": gate}))
    r, orders = advance(r, observations(fleet), 1.0)
    deliver(fleet, orders)
    fleet[0].p95 = cand
    r, _ = advance(r, observations(fleet), 2.0)
    assert gate_row(r, "p95_latency_ms")["ok"] is ok
    assert r.state == ("running" if ok else "paused")


@settings(max_examples=300, deadline=None)
@given(
    base=st.floats(0, 1e4, allow_nan=False),
    cand=st.floats(0, 1e5, allow_nan=False),
    rel=st.floats(0, 10, allow_nan=False),
    floor=st.floats(0, 100, allow_nan=False),
)
def test_latency_gate_property(base: float, cand: float, rel: float, floor: float) -> None:
    from cloud.hub.rollout.core.spec import Gate

    g = Gate("p95_latency_ms", rel, floor)
    both = cand > base * (1 + rel) and cand - base > floor
    assert g.passes(cand, base) is (not both) or abs(cand - g.limit(base)) <= 1e-9 * max(1, cand)
    # A floor never makes the gate stricter than the relative tolerance alone, nor less
    # strict than the floor alone.
    assert g.limit(base) >= Gate("p95_latency_ms", rel, 0.0).limit(base)
    assert g.limit(base) >= base + floor


def test_error_rate_gate_waits_for_enough_inferences_and_holds_the_wave() -> None:
    fleet = fleet_of(2)
    r = started(spec(waves=[50, 100], soak_seconds=2, gate_min_inferences=100))
    r, orders = advance(r, observations(fleet), 1.0)
    deliver(fleet, orders)
    fleet[0].inferences, fleet[0].errors, fleet[0].error_rate = 10, 1, 0.1  # 1 unlucky error
    r, _, t = run(r, fleet, 2.0, 5)
    g = gate_row(r, "error_rate")
    assert r.state == "running" and g["ok"] is None and g["waiting"] is True
    assert g["inferences"] == 11 and g["min_inferences"] == 100  # errors count as served
    assert r.current_wave == 0 and r.waiting_for == "samples"  # soaked, but not judged
    fleet[0].inferences, fleet[0].errors = 500, 1  # pooled: 1/501, not the 10 % interval
    r, _ = advance(r, observations(fleet), t)
    g = gate_row(r, "error_rate")
    assert g["ok"] is True and g["value"] == pytest.approx(1 / 501) and not g["waiting"]
    r, _, _ = run(r, fleet, t + 1, 6)
    assert r.state == "completed"


def test_error_rate_gate_fails_on_enough_inferences() -> None:
    fleet = fleet_of(2)
    gate = {"tolerance": 0.02, "min_inferences": 50}
    r = started(spec(waves=[50, 100], soak_seconds=30, gates={"error_rate": gate}))
    r, orders = advance(r, observations(fleet), 1.0)
    deliver(fleet, orders)
    fleet[0].inferences, fleet[0].errors = 60, 6
    r, _ = advance(r, observations(fleet), 2.0)
    assert r.state == "paused" and "66 inferences" in r.audit[-1].reason


def test_an_idle_new_version_does_not_hold_the_wave() -> None:
    # No traffic at all (agents report error_rate 0.0 for an empty interval): nothing will
    # ever arrive, so the gate stays unjudged instead of waiting forever.
    fleet = fleet_of(2, inferences=0)
    r = started(spec(waves=[50, 100], gate_min_inferences=50))
    r, _, _ = run(r, fleet, 1.0, 6)
    assert r.state == "completed"
    g = gate_row(r, "error_rate")
    assert g["ok"] is None and g["waiting"] is False and g["inferences"] == 0


def test_uncounted_inferences_do_not_block_a_gate() -> None:
    # Observations without counts (None) cannot hold a gate: the old behaviour.
    fleet = fleet_of(2, inferences=None)
    r = started(spec(waves=[50, 100], gate_min_inferences=10_000))
    r, _, _ = run(r, fleet, 1.0, 6)
    assert r.state == "completed"
    assert all(g["inferences"] is None and g["waiting"] is False for g in r.gates)


# --------------------------------------------------------------------------- what devices ran


def test_a_rollback_returns_each_device_to_what_it_reported_before() -> None:
    # Mixed fleet: each device goes back to ITS previous version, not a fleet-wide one.
    fleet = [SimDevice("a", model=("digits", 1)), SimDevice("b", model=("digits", 3)),
             SimDevice("c", model=("other", 7))]  # fmt: skip
    r = started(spec(version=4, waves=[100]))
    r, _, t = run(r, fleet, 0.0, 3)
    assert {d: (x.from_name, x.from_version) for d, x in r.deployments.items()} == {
        "a": ("digits", 1), "b": ("digits", 3), "c": ("other", 7),
    }  # fmt: skip
    r, orders = act(r, "rollback", t, observations=observations(fleet))
    assert sorted((o.device, o.name, o.version) for o in orders) == [
        ("a", "digits", 1), ("b", "digits", 3), ("c", "other", 7),
    ]  # fmt: skip


def test_a_device_with_another_rollouts_command_in_flight_joins_once_it_settled() -> None:
    # Right after a rolled-back rollout, its devices are still reverting: taking them now
    # would record the version they are leaving as the one to roll back to.
    from dataclasses import replace

    fleet = fleet_of(2, model=("digits", 2))
    r = started(spec(version=3, waves=[100]))
    for t in range(1, 5):
        obs = observations(fleet)
        obs["d00"] = replace(obs["d00"], busy="older-rollout")
        r, orders = advance(r, obs, float(t))
        deliver(fleet, orders)
        assert "d00" not in r.deployments
    assert r.deployments["d01"].status == "committed"
    assert r.state == "running" and r.waiting_for == "devices"  # the wave waits for d00
    fleet[0].model = ("digits", 1)  # its revert landed
    r, orders = advance(r, observations(fleet), 5.0)
    assert [o.device for o in orders] == ["d00"] and r.deployments["d00"].from_version == 1


def test_an_unconfirmed_rollback_settles_as_failed_after_the_timeout() -> None:
    fleet = fleet_of(1)
    r = started(spec(waves=[100], deploy_timeout_s=10))
    r, _, t = run(r, fleet, 0.0, 2)
    fleet[0].obey = lambda order: None  # type: ignore[method-assign]  # offline for good
    r, orders = act(r, "rollback", t, observations=observations(fleet))
    assert r.deployments["d00"].status == "reverting" and len(orders) == 1
    r, _ = advance(r, observations(fleet), t + 5)
    assert r.deployments["d00"].status == "reverting"
    r, _ = advance(r, observations(fleet), t + 11)
    d = r.deployments["d00"]
    assert d.status == "failed" and "rollback not confirmed" in d.reason


# --------------------------------------------------------------------------- actions


def test_actions_obey_the_state_table() -> None:
    r = new_rollout("r", spec(), 0.0)
    with pytest.raises(RolloutError, match="cannot pause"):
        act(r, "pause", 1.0)
    with pytest.raises(RolloutError, match="unknown action"):
        act(r, "explode", 1.0)
    r, _ = act(r, "resume", 1.0)  # resume starts a draft
    assert r.state == "running"
    r, _ = act(r, "pause", 2.0, actor="ann", reason="lunch")
    assert r.state == "paused" and r.audit[-1].actor == "ann" and r.audit[-1].reason == "lunch"
    r, _ = act(r, "abort", 3.0)
    assert r.state == "aborted"
    for action in ("resume", "pause", "abort", "retry"):
        with pytest.raises(RolloutError) as exc:
            act(r, action, 4.0)
        assert exc.value.conflict


def test_manual_approval_between_waves() -> None:
    fleet = fleet_of(2)
    with pytest.raises(RolloutError, match="waiting for approval"):
        act(started(spec()), "approve", 0.5)  # no manual approval configured
    r = started(spec(manual_approval=True))
    r, _, t = run(r, fleet, 1.0, 5)
    assert r.current_wave == 0 and r.waiting_for == "approval"
    r, _ = act(r, "approve", t, actor="ann")
    r, _, _ = run(r, fleet, t, 5)
    assert r.state == "completed"


def test_retry_reorders_failed_devices_only() -> None:
    fleet = fleet_of(2)
    fleet[0].fails = True
    r = started(spec(waves=[100]))
    r, _, t = run(r, fleet, 0.0, 2)
    assert r.state == "paused"
    fleet[0].fails = False
    r, orders = act(r, "retry", t)
    assert orders == [] and r.deployments["d00"].status == "retry"
    r, _ = act(r, "resume", t)
    r, orders = advance(r, observations(fleet), t + 1)
    assert [(o.device, o.kind) for o in orders] == [("d00", "deploy")]
    assert r.deployments["d00"].attempts == 2
    deliver(fleet, orders)
    r, _, _ = run(r, fleet, t + 2, 2)
    assert r.state == "completed"
    with pytest.raises(RolloutError, match="cannot retry"):
        act(r, "retry", t + 10)


def test_manual_rollback_after_completion_reaches_every_updated_device() -> None:
    fleet = [*fleet_of(3), SimDevice("fresh", model=None), SimDevice("same", model=("digits", 2))]
    r = started(spec(waves=[100]))
    r, _, t = run(r, fleet, 0.0, 3)
    assert r.state == "completed"
    r, orders = act(r, "rollback", t, observations=observations(fleet))
    assert sorted(o.device for o in orders) == ["d00", "d01", "d02"]
    assert r.deployments["fresh"].status == "stranded"  # had no model before
    assert r.deployments["same"].status == "current"  # never touched
    deliver(fleet, orders)
    r, _ = advance(r, observations(fleet), t + 1)
    assert {r.deployments[d].status for d in ("d00", "d01", "d02")} == {"reverted"}


def test_advance_is_pure() -> None:
    fleet = fleet_of(2)
    r = started(spec())
    before = repr(r)
    advance(r, observations(fleet), 1.0)
    assert repr(r) == before


# --------------------------------------------------------------------------- properties


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[RolloutSpec, list[SimDevice], list[int]]:
    n = draw(st.integers(1, 12))
    waves = sorted(set(draw(st.lists(st.integers(1, 100), min_size=1, max_size=4))))
    s = spec(
        waves=waves,
        soak_seconds=draw(st.sampled_from([0, 2])),
        success_threshold=draw(st.sampled_from([0.0, 0.5, 1.0])),
        error_threshold=draw(st.sampled_from([0.0, 0.25, 0.5, 1.0])),
        error_action=draw(st.sampled_from(["pause", "rollback"])),
        deploy_timeout_s=5,
        gates={"p95_latency_ms": None, "error_rate": None, "drift": None, "accuracy": None},
    )
    fleet = [
        SimDevice(
            f"d{i:02d}",
            fails=draw(st.booleans()),
            model=draw(st.sampled_from([("digits", 1), ("digits", 2), None])),
            tags=draw(st.sampled_from([("lab",), ("prod",), ("lab", "prod")])),
        )
        for i in range(n)
    ]
    joins = draw(st.lists(st.integers(0, 30), max_size=3))
    return s, fleet, joins


@settings(max_examples=150, deadline=None)
@given(scenarios())
def test_properties_of_any_run(  # noqa: C901 - one simulated run, invariants checked per step
    scenario: tuple[RolloutSpec, list[SimDevice], list[int]],
) -> None:
    s, fleet, joins = scenario
    r = started(s)
    deploys: dict[tuple[str, int], int] = {}
    t = 0.0
    for step in range(40):
        if step in joins:
            fleet.append(SimDevice(f"j{step:02d}"))
        prev_wave, prev_state = r.current_wave, r.state
        r, orders = advance(r, observations(fleet), t)
        for o in orders:
            if o.kind == "deploy":
                key = (o.device, r.deployments[o.device].wave)
                deploys[key] = deploys.get(key, 0) + 1
                assert o.version == s.version  # only the rollout's version is deployed
        # No device gets two deploy orders in one wave (no retries happen here).
        assert all(n == 1 for n in deploys.values())
        # Thresholds: a wave is left only with enough commits and few enough failures.
        if r.current_wave > prev_wave or (prev_state == "running" and r.state == "completed"):
            members = [
                d for d in r.deployments.values() if d.wave == prev_wave and d.status != "skipped"
            ]
            if members:
                ok = sum(d.status in ("committed", "current") for d in members)
                failed = sum(d.status == "failed" for d in members)
                assert ok / len(members) >= s.success_threshold
                assert failed / len(members) <= s.error_threshold
        deliver(fleet, orders)
        t += 1.0
        if r.state != "running":
            break
    if r.state in ("running", "paused", "completed", "aborted"):
        r, orders = act(r, "rollback", t, observations=observations(fleet))
        deliver(fleet, orders)
    if r.state == "rolled_back":
        r, _ = advance(r, observations(fleet), t + 1)
        by_id = {d.id: d for d in fleet}
        for d in r.deployments.values():
            if not d.updated_by_rollout:
                continue
            if d.from_version is None:
                assert d.status == "stranded"
            else:  # rollback reached it: it runs what it ran before (or could not install)
                assert by_id[d.device].model == (d.from_name, d.from_version), d
    # Every transition is in the audit log with a reason.
    assert all(a.reason for a in r.audit)
