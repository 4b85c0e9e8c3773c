"""Shadow rollouts through the hub's I/O shell: the signed deploy command carries the
setting, the devices' ``shadow`` events become their deployments' reports (kept across
restarts, shown by the API), and the gate stops the rollout on a disagreeing device."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from cloud.hub import commands
from cloud.hub.rollout.store import shadow_report, to_state
from cloud.hub.storage import EventRow, Rollout
from edge.agent import CommandGuard, CommandRefused, trusted_keys
from edge.contract import Command, Event, ShadowSettings, encode_json, topic
from tests.cloud.hub import helpers
from tests.cloud.hub.http.test_api import feed, upload

SHADOW = {"inputs": 25, "min_agreement": 0.8, "timeout": 60}


def shadow_event(device: str, cmd: Command, seq: int, agreement: float) -> tuple[str, bytes]:
    detail = {
        "inputs": 25, "wanted": 25, "agreement": agreement, "errors": 0, "min_agreement": 0.8,
        "candidate_latency_ms": {"p50": 0.8, "p95": 1.9},
        "served_latency_ms": {"p50": 0.6, "p95": 1.2},
    }  # fmt: skip
    e = Event(device, time.time(), seq, "deploy", "shadow run finished", "shadow",
              cmd.rollout, cmd.id, cmd.version, detail, "boot1")  # fmt: skip
    return topic(device, "events"), encode_json(e.to_dict())


def start(app: Any, client: Any, tokens: Any, make_bundle: Any) -> tuple[str, list[Command]]:
    hub = app.extensions["edgekit_hub"]
    sent: list[Command] = []
    hub.service.publisher = lambda _device, cmd: sent.append(cmd)
    h = tokens["operator"]
    upload(client, h, make_bundle(1))
    upload(client, h, make_bundle(2))
    feed(app, *[helpers.status(f"cam-{i}", version=1) for i in range(2)])
    body = {"model": "digits", "version": 2, "target": {"all": True}, "shadow": SHADOW}
    resp = client.post("/api/v1/rollouts", json=body, headers=h)
    assert resp.status_code == 201, resp.get_json()
    rid = resp.get_json()["id"]
    shown = client.get(f"/api/v1/rollouts/{rid}", headers=tokens["viewer"]).get_json()
    assert shown["spec"]["shadow"] == {**SHADOW, "timeout": 60.0}
    return rid, sent


def test_deploy_commands_carry_the_signed_shadow_setting(
    app: Any, client: Any, tokens: Any, make_bundle: Any, tmp_path: Path
) -> None:
    rid, sent = start(app, client, tokens, make_bundle)
    assert sorted(c.device or "" for c in sent) == ["cam-0", "cam-1"]
    with app.extensions["edgekit_hub"].db.session() as s:
        pem = commands.command_public_pem(s)
    for cmd in sent:
        assert cmd.kind == "deploy" and cmd.rollout == rid
        assert cmd.shadow == ShadowSettings(25, 0.8, 60.0)
        wire = encode_json(cmd.to_dict())
        guard = CommandGuard(cmd.device or "", trusted_keys([], pem), tmp_path / cmd.id)
        assert guard.check(wire).shadow == cmd.shadow  # what the agent's installer gets
        # the setting is signed: a broker (or anyone on it) cannot lower the bar
        forged = dataclasses.replace(cmd, shadow=ShadowSettings(25, 0.0, 60.0))
        other = CommandGuard(cmd.device or "", trusted_keys([], pem), tmp_path / "forged")
        with pytest.raises(CommandRefused) as err:
            other.check(encode_json(forged.to_dict()))
        assert err.value.reason == "bad_signature"
    sent.clear()
    assert client.post(f"/api/v1/rollouts/{rid}/rollback", headers=tokens["operator"])
    assert sent and all(c.kind == "rollback" and c.shadow is None for c in sent)
    assert all("shadow" not in c.to_dict() for c in sent)


def test_shadow_reports_are_recorded_per_deployment_and_gate_the_rollout(
    app: Any, client: Any, tokens: Any, make_bundle: Any
) -> None:
    hub = app.extensions["edgekit_hub"]
    rid, sent = start(app, client, tokens, make_bundle)
    by_device = {c.device: c for c in sent}
    feed(app, shadow_event("cam-0", by_device["cam-0"], 10, 0.96))
    hub.service.tick()
    shown = client.get(f"/api/v1/rollouts/{rid}", headers=tokens["viewer"]).get_json()
    assert shown["state"] == "running"
    deps = {d["device"]: d for d in shown["deployments"]}
    assert deps["cam-0"]["shadow"] == {
        "inputs": 25, "wanted": 25, "agreement": 0.96, "errors": 0,
        "candidate_latency_ms": {"p50": 0.8, "p95": 1.9},
        "served_latency_ms": {"p50": 0.6, "p95": 1.2},
    }  # fmt: skip
    assert deps["cam-1"]["shadow"] is None
    gate = next(g for g in shown["gates"] if g["metric"] == "shadow_agreement")
    assert gate["ok"] is True and gate["value"] == 0.96 and gate["threshold"] == 0.8
    assert "_shadow" not in shown["baseline"]  # stored beside it, not shown as a baseline

    feed(app, shadow_event("cam-1", by_device["cam-1"], 11, 0.12))
    hub.service.tick()
    shown = client.get(f"/api/v1/rollouts/{rid}", headers=tokens["viewer"]).get_json()
    assert shown["state"] == "paused"
    assert shown["audit"][-1]["reason"].startswith(
        "shadow gate: cam-1 agreed with the served model on 12.0% of 25 inputs"
    )
    gate = next(g for g in shown["gates"] if g["metric"] == "shadow_agreement")
    assert gate["ok"] is False and gate["under"] == ["cam-1"]
    with hub.db.session() as s:  # what a restarted hub reads back
        r = to_state(s.get(Rollout, rid))
    assert r.deployments["cam-1"].shadow is not None
    assert r.deployments["cam-1"].shadow["agreement"] == 0.12


@pytest.mark.parametrize(
    "detail, expected",
    [
        ({}, {"inputs": 0, "agreement": None, "candidate_latency_ms": None}),
        (
            {"inputs": -3, "agreement": 7, "candidate_latency_ms": {"p50": "x", "p95": -1}},
            {"inputs": 0, "agreement": None, "candidate_latency_ms": None},
        ),
        (
            {"inputs": True, "agreement": float("nan"), "candidate_latency_ms": [1, 2]},
            {"inputs": 0, "agreement": None, "candidate_latency_ms": None},
        ),
        (  # an older agent's single mean
            {"inputs": 4, "agreement": 0.5, "candidate_latency_ms": 2.5},
            {"inputs": 4, "agreement": 0.5, "candidate_latency_ms": {"mean": 2.5}},
        ),
    ],
)
def test_a_devices_shadow_detail_is_checked_field_by_field(
    detail: dict[str, Any], expected: dict[str, Any]
) -> None:
    row = EventRow(device_id="d", ts=0.0, seq=1, kind="deploy", step="shadow", message="m",
                   rollout="r", command="c1", version=2, detail=detail)  # fmt: skip
    report = shadow_report(row)
    assert report.command == "c1"
    got = {k: getattr(report, k) for k in expected}
    assert got == expected
