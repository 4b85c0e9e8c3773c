"""What the rollout ticker observes from the database: counts served on the new version
and the KPIs' clock."""

from __future__ import annotations

import time
from typing import Any

from cloud.hub.rollout import new_rollout
from cloud.hub.rollout_spec import RolloutSpec
from cloud.hub.rollout_store import observe
from tests.cloud.hub import helpers
from tests.cloud.hub.test_api import feed


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
    assert a.model == ("digits", 2)
