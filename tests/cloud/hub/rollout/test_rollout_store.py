"""What the rollout ticker observes from the database: counts served on the new version,
the KPIs' clock, and devices another rollout still has a command in flight to."""

from __future__ import annotations

import time
from typing import Any

from cloud.hub.rollout.core import RolloutSpec
from cloud.hub.rollout.core.machine import act, advance, new_rollout
from cloud.hub.rollout.store import observe, save_state
from tests.cloud.hub import helpers
from tests.cloud.hub.helpers import feed


def spec(version: int = 2) -> RolloutSpec:
    return RolloutSpec.parse({"model": "digits", "version": version, "target": {"all": True}})


def test_observe_counts_what_the_new_version_served_since_the_rollout(app: Any) -> None:
    now = time.time()
    r = new_rollout("r-count", spec(), now - 30)
    feed(
        app,
        helpers.status("a", version=2), helpers.status("b", version=1),
        # a: 50 inferences and 1 error per message on v2; an old v2 sample an hour before
        # the rollout does not count, nor do b's v1 samples.
        helpers.telemetry("a", seq=1, version=2, ts=now - 3600),
        helpers.telemetry("a", seq=2, version=2, ts=now - 5),
        helpers.telemetry("a", seq=3, version=2, ts=now - 1),
        helpers.telemetry("b", seq=1, version=1, ts=now - 1),
    )  # fmt: skip
    with app.extensions["edgekit_hub"].db.session() as s:
        obs = observe(s, r)
    a, b = obs["a"], obs["b"]
    assert a.kpis is not None and (a.kpis.inferences, a.kpis.errors) == (100, 2)
    assert a.kpis.ts is not None and abs(a.kpis.ts - (now - 1)) < 1e-3
    assert b.kpis is not None and b.kpis.inferences is None  # not on the new version
    assert a.model == ("digits", 2) and a.busy is None


def test_observe_marks_devices_with_another_rollouts_command_in_flight(app: Any) -> None:
    now = time.time()
    feed(app, helpers.status("a", version=2), helpers.status("b", version=2))
    hub = app.extensions["edgekit_hub"]
    old = new_rollout("r-old", spec(), now)
    old, _ = act(old, "start", now)
    from cloud.hub.rollout.core.state import DeploymentState

    for dev, status in (("a", "reverting"), ("b", "reverted")):
        old.deployments[dev] = DeploymentState(dev, 0, status, True, "digits", 1)
    old, _ = act(old, "pause", now)
    new = new_rollout("r-new", spec(3), now)
    with hub.db.session() as s:
        save_state(s, old)
        obs = observe(s, new)
        assert obs["a"].busy == "r-old" and obs["b"].busy is None
        assert observe(s, old)["a"].busy is None  # its own commands do not count
        old, _ = act(old, "abort", now + 1)
        save_state(s, old)
        assert observe(s, new)["a"].busy is None  # an aborted rollout is not ticked


def test_a_late_older_report_does_not_change_the_recorded_from_version(app: Any) -> None:
    # The demo case: a device was rolled back to v1 (status at t0 + 10); telemetry it made
    # on v2 just before (t0 + 9) is written after it. The next rollout must record v1 as
    # what the device ran, so its rollback returns it to v1.
    from edge.contract import ModelRef, Status, encode_json, topic

    t0 = time.time() - 60
    st = Status("a", t0 + 10, 5, "online", "0.1.0", ModelRef("digits", 1), "boot1", True, {})
    feed(app, (topic("a", "status"), encode_json(st.to_dict())))
    feed(app, helpers.telemetry("a", seq=7, version=2, ts=t0 + 9))
    r = new_rollout("r-next", spec(3), t0 + 20)
    r, _ = act(r, "start", t0 + 20)
    with app.extensions["edgekit_hub"].db.session() as s:
        obs = observe(s, r)
    assert obs["a"].model == ("digits", 1)
    r, orders = advance(r, obs, t0 + 21)
    assert [(o.device, o.version) for o in orders] == [("a", 3)]
    assert (r.deployments["a"].from_name, r.deployments["a"].from_version) == ("digits", 1)
    r, orders = act(r, "rollback", t0 + 22, observations=obs)
    assert [(o.kind, o.version) for o in orders] == [("rollback", 1)]


def test_a_revoked_device_is_no_rollouts_target(app: Any) -> None:
    from cloud.hub.storage import Device

    now = time.time()
    feed(app, helpers.status("a", version=1), helpers.status("b", version=1))
    hub = app.extensions["edgekit_hub"]
    with hub.db.session() as s:
        dev = s.get(Device, "b")
        assert dev is not None
        dev.revoked = now
        s.commit()
        r = new_rollout("r-revoked", spec(), now)
        assert set(observe(s, r)) == {"a"}
        r, orders = advance(act(r, "start", now)[0], observe(s, r), now)
        assert [o.device for o in orders] == ["a"]
