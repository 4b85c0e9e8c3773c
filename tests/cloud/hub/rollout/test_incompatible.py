"""Devices that can run none of a bundle's variants: the pure state machine never sends
them the deploy, does not count them as failed, and finishes the rollout for the others."""

from __future__ import annotations

from cloud.hub.rollout.core.machine import act, advance, wave_progress
from tests.cloud.hub.fleet import SimDevice, deliver, observations
from tests.cloud.hub.rollout.test_rollout import fleet_of, run, spec, started

REASON = "no variant of digits v2 runs on this device: onnxruntime-fp32 needs onnxruntime"


def test_incompatible_devices_get_no_deploy_and_the_rollout_completes() -> None:
    fleet = fleet_of(4)
    for d in fleet[:2]:
        d.incompatible = REASON
    r = started(spec(waves=[50, 100], soak_seconds=0, error_threshold=0.0))
    r, all_orders, _t = run(r, fleet, 1.0, 8)
    assert r.state == "completed", r.audit[-1]
    sent = {o.device for _w, orders in all_orders for o in orders}
    assert sent == {"d02", "d03"}  # never a deploy to the incompatible ones
    assert all(d.history == [] for d in fleet[:2])
    for dev in ("d00", "d01"):
        dep = r.deployments[dev]
        assert dep.status == "incompatible" and dep.reason == REASON
        assert not dep.updated_by_rollout
    assert {r.deployments[d].status for d in ("d02", "d03")} == {"committed"}
    assert "2 device(s) incompatible" in r.audit[-1].reason
    waves = wave_progress(r, 4)
    assert sum(w["incompatible"] for w in waves) == 2 and sum(w["failed"] for w in waves) == 0


def test_incompatible_devices_do_not_trip_the_error_threshold() -> None:
    """With error_threshold 0 one *failed* device pauses the wave; incompatible ones do not."""
    fleet = fleet_of(3)
    fleet[0].incompatible = REASON
    fleet[1].incompatible = REASON
    r = started(spec(waves=[100], soak_seconds=0, error_threshold=0.0))
    r, _orders, _t = run(r, fleet, 1.0, 4)
    assert r.state == "completed"
    failing = fleet_of(3)
    failing[0].fails = True
    r2, _o, _t = run(
        started(spec(waves=[100], soak_seconds=0, error_threshold=0.0)), failing, 1.0, 4
    )
    assert r2.state == "paused"  # the same fleet with a real failure stops: the rule is live


def test_an_agents_incompatible_refusal_is_not_a_failure() -> None:
    """The hub could not tell (no capabilities) and sent the deploy; the agent refused it
    with code "incompatible": that device is incompatible, the wave goes on."""
    fleet = fleet_of(2)
    fleet[0].refuses = "device class: " + REASON
    r = started(spec(waves=[100], soak_seconds=0, error_threshold=0.0))
    r, _orders, _t = run(r, fleet, 1.0, 5)
    assert r.state == "completed", r.audit[-1]
    dep = r.deployments["d00"]
    assert dep.status == "incompatible"
    assert dep.reason == f"device refused: device class: {REASON}"
    # a rollback afterwards sends nothing to it: it never changed
    r, orders = act(r, "rollback", 10.0, observations=observations(fleet))
    assert [o.device for o in orders] == ["d01"]
    assert r.deployments["d00"].status == "incompatible"


def test_a_rollout_whose_every_target_is_incompatible_is_aborted() -> None:
    fleet = fleet_of(3, incompatible=REASON)
    r = started(spec(waves=[50, 100], soak_seconds=0))
    r, all_orders, _t = run(r, fleet, 1.0, 6)
    assert r.state == "aborted"
    assert r.audit[-1].action == "auto_abort"
    assert (
        r.audit[-1].reason == "no target device can run digits v2: 3 incompatible, none committed"
    )
    assert all(not orders for _w, orders in all_orders)


def test_a_device_already_on_the_version_is_current_even_if_judged_incompatible() -> None:
    fleet = [SimDevice("d00", model=("digits", 2), incompatible=REASON), SimDevice("d01")]
    fleet[1].incompatible = REASON
    r = started(spec(waves=[100], soak_seconds=0))
    r, _o, _t = run(r, fleet, 1.0, 4)
    assert r.deployments["d00"].status == "current"
    assert r.deployments["d01"].status == "incompatible"
    assert r.state == "completed"  # one device runs it: not a rollout that reached nobody


def test_a_retried_device_that_became_incompatible_is_not_sent_the_deploy() -> None:
    fleet = fleet_of(2)
    fleet[0].fails = True
    r = started(spec(waves=[100], soak_seconds=0, error_threshold=0.6))
    r, _o, t = run(r, fleet, 1.0, 3)
    assert r.deployments["d00"].status == "failed"
    r, _ = act(r, "retry", t)
    fleet[0].incompatible = REASON  # meanwhile it reported capabilities that rule it out
    r, orders = advance(r, observations(fleet), t + 1)
    deliver(fleet, orders)
    assert orders == [] and r.deployments["d00"].status == "incompatible"
