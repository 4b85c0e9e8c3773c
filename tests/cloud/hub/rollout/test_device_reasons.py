"""A failed or reverted device keeps its own reason on the rollout: the agent's words
("probation failed: mean confidence 0.104 dropped ...") stay in front of the hub's later
notes ("already runs the previous version"), in the pure machine and through ingest."""

from __future__ import annotations

import time
from typing import Any

from cloud.hub.rollout.core import RolloutSpec
from cloud.hub.rollout.core.machine import StepReport, act, advance, new_rollout
from cloud.hub.rollout.core.state import CAUSE_SEP, DeploymentState, set_status
from cloud.hub.rollout.store import step_reason
from cloud.hub.storage import EventRow
from edge.contract import Event, encode_json, topic
from tests.cloud.hub import helpers
from tests.cloud.hub.fleet import SimDevice, deliver, observations
from tests.cloud.hub.http.test_api import feed, upload

REASON = "mean confidence 0.104 dropped more than 0.2 below 0.991"


def spec(**kw: object) -> RolloutSpec:
    body = {"model": "digits", "version": 3, "target": {"all": True}, "waves": [100]}
    body.update(kw)
    return RolloutSpec.parse(body)


class ProbationFails(SimDevice):
    """Installs the new version, then its probation rolls it back (as the demo's bad v3)."""

    def obey(self, order: Any) -> None:
        self.history.append(order)
        if order.kind == "deploy":
            reason = f"probation failed: {REASON}"
            self.step = StepReport("rolled_back", order.command_id, order.version, reason)
            return  # still runs what it ran before
        super().obey(order)


def test_auto_rollback_keeps_the_devices_reason_in_front_of_the_hubs_note() -> None:
    fleet = [ProbationFails("d0", model=("digits", 2)), SimDevice("d1", model=("digits", 2))]
    r, _ = act(
        new_rollout("r1", spec(error_threshold=0.0, error_action="rollback"), 0.0), "start", 0.0
    )
    for t in range(4):
        r, orders = advance(r, observations(fleet), float(t))
        deliver(fleet, orders)
    assert r.state == "rolled_back"
    d0, d1 = r.deployments["d0"], r.deployments["d1"]
    assert d0.status == "reverted"
    assert d0.reason == (
        f"device rolled back: probation failed: {REASON}{CAUSE_SEP}"
        "already runs the previous version v2"
    )
    # d1 committed v3 and was told to go back: no device failure to keep, only the notes
    assert d1.status in ("reverting", "reverted") and CAUSE_SEP not in d1.reason


def test_the_cause_survives_reverting_then_reverted_but_not_a_retry() -> None:
    d = DeploymentState("d0", 0, "failed", True, "digits", 2, reason="device reported failure: x")
    set_status(d, "reverting", 1.0, "rollback to v2 ordered", keep_cause=True)
    set_status(d, "reverted", 2.0, "device reports the previous version v2", keep_cause=True)
    assert (
        d.reason == f"device reported failure: x{CAUSE_SEP}device reports the previous version v2"
    )
    set_status(d, "retry", 3.0, "queued for retry")
    assert d.reason == "queued for retry"
    ok = DeploymentState("d1", 0, "committed", True, "digits", 2, reason="device committed")
    set_status(ok, "reverting", 1.0, "rollback to v2 ordered", keep_cause=True)
    assert ok.reason == "rollback to v2 ordered"  # a committed device had no failure


def _row(detail: Any, message: str = "m") -> EventRow:
    return EventRow(device_id="d", ts=0.0, seq=0, kind="rollback", step="rolled_back",
                    message=message, detail=detail)  # fmt: skip


def test_step_reason_reads_the_agents_detail_and_tolerates_bad_ones() -> None:
    assert step_reason(_row({"failed_step": "probation", "reason": REASON})) == (
        f"probation failed: {REASON}"
    )
    assert step_reason(_row({"reason": "commanded"})) == "commanded"
    assert step_reason(_row({"failed_step": "failed", "reason": "boom"})) == "boom"
    bad_details: list[Any] = [None, [], {"reason": ""}, {"reason": None}, "text"]
    for bad in bad_details:
        assert step_reason(_row(bad, "rolled back: it broke")) == "rolled back: it broke"
    assert step_reason(_row({"failed_step": 7, "reason": "x"})) == "x"


def _event(device: str, seq: int, rid: str, command: str) -> tuple[str, bytes]:
    """The event the agent sends when probation rolls v3 back (edge/install/installer.py)."""
    detail = {"failed_step": "probation", "reason": REASON, "restored": "digits-2",
              "restored_version": 2}  # fmt: skip
    e = Event(device, time.time(), seq, "rollback", f"rolled back: {REASON}", "rolled_back",
              rid, command, 3, detail, "boot1")  # fmt: skip
    return topic(device, "events"), encode_json(e.to_dict())


def test_ingested_rollback_reason_reaches_the_rollout_api(
    app: Any, client: Any, tokens: Any, make_bundle: Any
) -> None:
    h = tokens["operator"]
    for v in (2, 3):
        upload(client, h, make_bundle(v))
    feed(app, *[helpers.status(f"cam-{i}", version=2) for i in range(2)])
    body = {"model": "digits", "version": 3, "target": {"all": True}, "waves": [100],
            "error_threshold": 0.0, "error_action": "rollback"}  # fmt: skip
    resp = client.post("/api/v1/rollouts", json=body, headers=h)
    assert resp.status_code == 201, resp.get_json()
    rid = resp.get_json()["id"]
    deps = client.get(f"/api/v1/rollouts/{rid}", headers=h).get_json()["deployments"]
    feed(app, *[_event(d["device"], 5 + i, rid, d["command"]) for i, d in enumerate(deps)],
         *[helpers.status(d["device"], version=2, seq=9) for d in deps])  # fmt: skip
    app.extensions["edgekit_hub"].service.tick()
    app.extensions["edgekit_hub"].service.tick()
    r = client.get(f"/api/v1/rollouts/{rid}", headers=h).get_json()
    assert r["state"] == "rolled_back"
    for d in r["deployments"]:
        assert d["status"] == "reverted", d
        assert f"probation failed: {REASON}" in d["reason"]
        assert d["reason"].endswith("already runs the previous version v2")
    assert "already runs" not in r["audit"][-1]["reason"]  # the rollout's own reason


def test_a_malformed_event_detail_does_not_break_the_rollout(
    app: Any, client: Any, tokens: Any, make_bundle: Any
) -> None:
    h = tokens["operator"]
    for v in (2, 3):
        upload(client, h, make_bundle(v))
    feed(app, helpers.status("cam-0", version=2))
    body = {"model": "digits", "version": 3, "target": {"all": True}, "waves": [100]}
    rid = client.post("/api/v1/rollouts", json=body, headers=h).get_json()["id"]
    dep = client.get(f"/api/v1/rollouts/{rid}", headers=h).get_json()["deployments"][0]
    e = Event("cam-0", time.time(), 5, "deploy", "self-test broke", "failed", rid,
              dep["command"], 3, {"reason": ["not", "a", "string"]}, "boot1")  # fmt: skip
    feed(app, (topic("cam-0", "events"), encode_json(e.to_dict())))
    app.extensions["edgekit_hub"].service.tick()
    d = client.get(f"/api/v1/rollouts/{rid}", headers=h).get_json()["deployments"][0]
    assert d["status"] == "failed" and d["reason"].startswith("device reported failure: ")
