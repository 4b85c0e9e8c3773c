"""``PUT /api/v1/devices/<id>/capture`` and ``edgekit hub devices capture``: checked like
the agent checks it, sent as a signed config command, kept on the device row; and the whole
loop with a real agent: the hub turns capture on, the agent captures, uploads to the hub's
sample endpoint, and the samples are there."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.hub.commands import command_public_pem
from cloud.hub.storage import Device
from edge import contract as c
from edge.agent import Agent, CommandGuard, config, trusted_keys
from edge.capture import SampleStore, Uploader
from edge.contract import Command
from edge.messaging import MemoryBroker, MemoryTransport
from tests.bundles import raw_digit
from tests.cloud.hub.cli.conftest import LiveHub
from tests.cloud.hub.cli.conftest import cli as cli
from tests.cloud.hub.cli.conftest import live_hub as live_hub
from tests.cloud.hub.samples.factory import add_device
from tests.edge.capture.samples_kit import sample
from tests.waiting import wait_for

MODELS = Path(__file__).resolve().parents[4] / "models"
DEV = "cam-0"


@pytest.fixture
def sent(app: Any) -> list[tuple[str, Command]]:
    """What the hub publishes (the MQTT bridge's seam), in order."""
    out: list[tuple[str, Command]] = []
    app.extensions["edgekit_hub"].service.publisher = lambda device, cmd: out.append((device, cmd))
    return out


@pytest.fixture
def device(app: Any) -> dict[str, str]:
    with app.extensions["edgekit_hub"].db.session() as s:
        return add_device(s, DEV)


def put(client: Any, tokens: dict[str, dict[str, str]], body: Any, role: str = "operator",
        device: str = DEV) -> Any:  # fmt: skip
    return client.put(f"/api/v1/devices/{device}/capture", json=body, headers=tokens[role])


def test_sends_a_signed_config_command_the_agent_accepts(
    app: Any, client: Any, tokens: dict[str, dict[str, str]], device: Any, sent: list[Any],
    tmp_path: Path,
) -> None:  # fmt: skip
    r = put(client, tokens, {"enabled": True, "low_confidence": 0.4, "next": 10})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["capture"]["policy"] == {"enabled": True, "low_confidence": 0.4}
    assert body["capture"]["requested"] == 10 and body["capture"]["by"] == "operator"
    [(target, cmd)] = sent
    assert target == DEV and cmd.id == body["command"] and cmd.kind == "config"
    assert cmd.config == {"capture": {"enabled": True, "low_confidence": 0.4, "next": 10}}
    # the agent's own guard takes it (signature, device, expiry, nonce) and its config too
    with app.extensions["edgekit_hub"].db.session() as s:
        pem = tmp_path / "hub.pem"
        pem.write_text(command_public_pem(s))
    guard = CommandGuard(DEV, trusted_keys((pem,), None), tmp_path)
    checked = guard.check(c.encode_json(cmd.to_dict()))
    cfg = config.load({"device_id": DEV, "data_dir": str(tmp_path)}, environ={})
    applied = cfg.replace_remote(checked.config).capture
    assert applied.enabled and applied.low_confidence == 0.4 and applied.next == 10
    # a second call merges into what was sent before; the device page shows it
    assert put(client, tokens, {"random": 0.1}).status_code == 200
    shown = client.get(f"/api/v1/devices/{DEV}", headers=tokens["viewer"]).get_json()["capture"]
    assert shown["policy"] == {"enabled": True, "low_confidence": 0.4, "random": 0.1}
    assert shown["requested"] is None and len(sent) == 2


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 400, "at least one capture key"),
        ({"enabld": True}, 400, "unknown key"),
        ({"enabled": "yes"}, 400, "expected true or false"),
        ({"max_mb": 5000}, 400, "the range a remote config may set"),
        ({"max_per_minute": 10_000}, 400, "the range a remote config may set"),
        ([True], 400, "JSON object"),
    ],
)
def test_bad_policies_are_refused_before_anything_is_sent(
    client: Any, tokens: dict[str, dict[str, str]], device: Any, sent: list[Any],
    body: Any, status: int, message: str,
) -> None:  # fmt: skip
    r = put(client, tokens, body)
    assert r.status_code == status and message in r.get_json()["error"]["message"]
    assert sent == []


def test_roles_unknown_revoked_and_no_broker(
    app: Any, client: Any, tokens: dict[str, dict[str, str]], device: dict[str, str],
    sent: list[Any],
) -> None:  # fmt: skip
    assert put(client, tokens, {"enabled": True}, role="viewer").status_code == 403
    r = client.put(f"/api/v1/devices/{DEV}/capture", json={"enabled": True}, headers=device)
    assert r.status_code == 403  # a device does not switch capture on itself
    assert put(client, tokens, {"enabled": True}, device="nope").status_code == 404
    hub = app.extensions["edgekit_hub"]
    hub.service.publisher = None
    assert put(client, tokens, {"enabled": True}).status_code == 503
    with hub.db.session() as s:
        s.get(Device, DEV).revoked = time.time()
        s.commit()
    assert put(client, tokens, {"enabled": True}).status_code == 409
    with hub.db.session() as s:
        assert s.get(Device, DEV).capture is None  # nothing was sent, nothing recorded


def test_cli(cli: Any, live_hub: LiveHub, sent: list[Any]) -> None:
    with live_hub.app.extensions["edgekit_hub"].db.session() as s:
        add_device(s, DEV)
    r = cli("devices", "capture", DEV, "--on", "--low-confidence", "0.5", "--next", "20")
    assert r.code == 0, r.err
    assert f"to {DEV}: capture on, low_confidence 0.5, next 20" in r.out
    assert sent[-1][1].config == {"capture": {"enabled": True, "low_confidence": 0.5, "next": 20}}
    r = cli("devices", "capture", DEV, "--off", "--json")
    assert r.code == 0 and json.loads(r.out)["capture"]["policy"]["enabled"] is False
    assert cli("devices", "capture", DEV).code == 2  # nothing to change
    assert cli("devices", "capture", DEV, "--random", "2").code == 2
    assert cli("devices", "capture", "nope", "--on").code == 2  # 404


def test_uploader_against_the_hub_endpoint(live_hub: LiveHub, tmp_path: Path) -> None:
    """The device's uploader on the hub's real sample endpoint: stored, duplicates after a
    lost answer, and the wrong device or token refused with nothing lost."""
    with live_hub.app.extensions["edgekit_hub"].db.session() as s:
        token = add_device(s, DEV)["Authorization"].removeprefix("Bearer ")
    with SampleStore(tmp_path / "capture", 8 << 20) as store:
        ids = []
        for kind in ("image", "image", "tabular", "array", "image"):
            one = sample(kind)
            store.put(one)
            ids.append(one.id)
        up = Uploader(store, DEV, lambda: (live_hub.url, token), batch=lambda: 4)
        first = up.upload_once()
        assert first.ok and first.accepted == ids[:4], first.error
        assert up.upload_once().accepted == ids[4:] and store.stats()["pending"] == 0
        store.put(sample(id=ids[0]))  # sent again (its answer was lost)
        assert up.upload_once().duplicates == [ids[0]]
        store.put(sample())
        assert Uploader(store, "cam-9", lambda: (live_hub.url, token)).upload_once().status == 403
        assert Uploader(store, DEV, lambda: (live_hub.url, "ekd_x")).upload_once().status == 401
        assert store.stats()["pending"] == 1
    listed = live_hub.api("GET", "/samples", role="viewer").get_json()
    assert sorted(x["id"] for x in listed["samples"]) == sorted(ids)


@pytest.fixture
def agent(live_hub: LiveHub, tmp_path: Path) -> Iterator[tuple[Agent, MemoryBroker]]:
    """A real agent enrolled with the live hub (its token and command key), on a broker the
    hub's publisher writes to."""
    hub = live_hub.app.extensions["edgekit_hub"]
    with hub.db.session() as s:
        token = add_device(s, DEV)["Authorization"].removeprefix("Bearer ")
        (tmp_path / "hub.pem").write_text(command_public_pem(s))
    data = tmp_path / "data"
    data.mkdir()
    (data / "credentials.json").write_text(json.dumps({"token": token, "hub": live_hub.url}))
    broker = MemoryBroker()
    publisher = MemoryTransport(broker, "hub")
    publisher.connect()
    hub.service.publisher = lambda device, cmd: publisher.publish(
        c.topic(device, c.CMD), c.encode_json(cmd.to_dict()), qos=1
    )
    cfg = config.load({"device_id": DEV, "data_dir": str(data),
                       "bundle": str(MODELS / "digits.ekb"),
                       "trusted_key": str(MODELS / "dev-signing.pub"),
                       "command_keys": str(tmp_path / "hub.pem"),
                       "selftest_time_budget": "0.2", "telemetry_interval": "3600"},
                      environ={})  # fmt: skip
    running = Agent(cfg, MemoryTransport(broker, DEV))
    running.start()
    try:
        yield running, broker
    finally:
        running.stop(graceful=False)


def test_the_loop_with_a_real_agent(live_hub: LiveHub, agent: tuple[Agent, MemoryBroker]) -> None:
    running, broker = agent
    for i in range(5):
        running.predict(np.asarray(raw_digit(i), dtype=np.float32), label=7)
    assert running.capture.flush() and running.capture.stats()["captured"] == 0  # off
    r = live_hub.api("PUT", f"/devices/{DEV}/capture",
                     json={"enabled": True, "low_confidence": 0.0, "next": 3,
                           "upload_interval": 1})  # fmt: skip
    assert r.status_code == 200, r.get_json()
    cid = r.get_json()["command"]

    def applied() -> bool:
        return any(json.loads(m.payload).get("command") == cid
                   for m in broker.messages(c.topic(DEV, c.EVENTS)))  # fmt: skip

    wait_for(lambda: running.server.sampler is not None and running.capture.stats()["requested"])
    for i in range(6):
        running.predict(np.asarray(raw_digit(10 + i), dtype=np.float32), label=7)
    listed = wait_for(lambda: (lambda b: b if b["total"] >= 3 else None)(
        live_hub.api("GET", f"/samples?device={DEV}", role="viewer").get_json()))  # fmt: skip
    assert listed["total"] >= 3
    reasons = {x["reason"] for x in listed["samples"]}
    assert "requested" in reasons and reasons <= {"requested", "wrong_label"}
    assert all(x["known_label"] == "7" and x["kind"] == "image" for x in listed["samples"])
    wait_for(applied, what="the config event")
