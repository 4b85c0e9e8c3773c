"""Per-device identity on a REAL Mosquitto running the generated configuration (dynamic
security): who may log in, publish and subscribe, and that enrollment and revocation take
effect on the running broker at once.

"Never arrives" is proven by acknowledgement, not by waiting: the forbidden message is
published first and a legitimate marker after it on the same connection; once the marker has
arrived, the forbidden one would have arrived before it had the broker let it through.
"""

from __future__ import annotations

import json

import pytest

from cloud.hub.broker import HUB_USERNAME, BrokerSettings, DynsecControl, hub_password
from cloud.hub.ingest import MqttBridge
from cloud.hub.storage import Device, EventRow, TelemetryRaw
from edge.contract import CMD, EVENTS, INFER_REQ, INFER_RES, STATUS, TELEMETRY, Command, topic
from tests.cloud.hub.broker.conftest import ManagedHub
from tests.cloud.hub.broker.managed import Mqtt
from tests.cloud.hub.helpers import event, status, telemetry
from tests.commands import command
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration]
REPORTS = (STATUS, TELEMETRY, EVENTS, INFER_RES)
CONTROL = "$CONTROL/dynamic-security/v1"


def device_login(hub: ManagedHub, device: str, *, v5: bool = True) -> Mqtt:
    creds = hub.enroll(device)["mqtt"]
    assert creds["username"] == device
    m = Mqtt(hub.broker.port, creds["username"], creds["password"], v5=v5)
    assert not m.connect().is_failure
    return m


def hub_login(hub: ManagedHub) -> Mqtt:
    with hub.db.session() as s:
        password = hub_password(s)
    m = Mqtt(hub.broker.port, HUB_USERNAME, password)
    assert not m.connect().is_failure
    return m


def test_anonymous_and_wrong_logins_are_refused(managed: ManagedHub) -> None:
    anonymous = Mqtt(managed.broker.port, None)
    assert anonymous.connect().is_failure
    anonymous.close()
    creds = managed.enroll("cam-1")["mqtt"]
    for user, password in (("cam-1", "not-its-password"), (HUB_USERNAME, creds["password"]),
                           ("cam-2", creds["password"])):  # fmt: skip
        m = Mqtt(managed.broker.port, user, password)
        assert m.connect().is_failure, user
        m.close()


def test_a_device_publishes_only_its_own_reports(managed: ManagedHub) -> None:
    a, b = device_login(managed, "dev-a"), device_login(managed, "dev-b")
    watcher = hub_login(managed)
    try:
        for leaf in REPORTS:
            assert not any(c.is_failure for c in watcher.subscribe(f"edgekit/v1/+/{leaf}"))
        for leaf in REPORTS:
            a.publish(topic("dev-a", leaf), f"own {leaf}".encode())
            watcher.wait_message(topic("dev-a", leaf), f"own {leaf}".encode())
        for leaf in REPORTS:  # A speaks for B: the broker drops every one
            a.publish(topic("dev-b", leaf), f"forged {leaf}".encode(), retain=leaf == STATUS)
        a.publish(topic("dev-a", TELEMETRY), b"marker")
        watcher.wait_message(topic("dev-a", TELEMETRY), b"marker")
        assert not [t for t in watcher.topics() if t.startswith("edgekit/v1/dev-b/")]
        # nor may it command B (or itself): B hears only the hub's marker
        assert not any(c.is_failure for c in b.subscribe(topic("dev-b", CMD)))
        a.publish(topic("dev-b", CMD), b"forged command")
        a.publish(topic("dev-a", CMD), b"self command")
        watcher.publish(topic("dev-b", CMD), b"hub marker")
        b.wait_message(topic("dev-b", CMD), b"hub marker")
        assert [p for t, p in b.messages if t == topic("dev-b", CMD)] == [b"hub marker"]
        # a fresh subscriber to B's status finds no retained forgery
        late = hub_login(managed)
        late.subscribe(topic("dev-b", STATUS))
        b.publish(topic("dev-b", STATUS), b"real status")
        late.wait_message(topic("dev-b", STATUS), b"real status")
        assert [p for t, p in late.messages if t == topic("dev-b", STATUS)] == [b"real status"]
        late.close()
    finally:
        for m in (a, b, watcher):
            m.close()


@pytest.mark.parametrize("v5", [True, False], ids=["mqtt5", "mqtt311"])
def test_a_device_subscribes_only_to_its_own_inbox(managed: ManagedHub, v5: bool) -> None:
    a = device_login(managed, "dev-a", v5=v5)
    device_login(managed, "dev-b").close()
    try:
        for leaf in (CMD, INFER_REQ):
            assert not any(c.is_failure for c in a.subscribe(topic("dev-a", leaf)))
        forbidden = [topic("dev-b", CMD), topic("dev-b", INFER_REQ), topic("dev-b", TELEMETRY),
                     "edgekit/v1/+/cmd", "edgekit/#", "#", topic("dev-a", TELEMETRY),
                     CONTROL + "/response", "$share/x/edgekit/v1/+/status"]  # fmt: skip
        for f in forbidden:
            assert all(c.is_failure for c in a.subscribe(f)), f
        # a device may not drive the broker's accounts either: B's account survives
        a.publish(CONTROL, {"commands": [{"command": "deleteClient", "username": "dev-b"}]})
        with DynsecControl(BrokerSettings.resolve(managed.config, managed.db)) as control:
            assert "dev-b" in {c["username"] for c in control.clients()}
    finally:
        a.close()


def test_the_hub_account_reads_reports_and_sends_commands(managed: ManagedHub) -> None:
    bridge = MqttBridge(managed.config, managed.db).start()
    a = device_login(managed, "dev-a")
    try:
        assert bridge.settings.username == HUB_USERNAME and bridge.settings.managed
        assert bridge.wait_connected(10) and bridge.subscribed.wait(10)
        assert bridge.mode == "shared"  # the shared subscriptions were granted too
        a.subscribe(topic("dev-a", CMD))
        bridge.publish_command("dev-a", Command.parse(command("ping", "dev-a", id="c-1")))
        wait_for(lambda: any(t == topic("dev-a", CMD) for t in a.topics()), 10, "the command")
        t, payload = status("dev-a")
        a.publish(t, payload, retain=True)

        def online() -> bool:
            with managed.db.session() as s:
                d = s.get(Device, "dev-a")
                return bool(d and d.online)

        wait_for(online, 10, "dev-a online in the hub")
        assert bridge.reconciled.wait(10)
    finally:
        a.publish(topic("dev-a", STATUS), b"", retain=True)
        a.close()
        bridge.stop()


def test_enrollment_creates_a_working_account_at_once(managed: ManagedHub) -> None:
    body = managed.enroll("fresh-1")
    assert set(body["mqtt"]) == {"username", "password"}
    m = Mqtt(managed.broker.port, "fresh-1", body["mqtt"]["password"])
    assert not m.connect().is_failure
    assert not any(c.is_failure for c in m.subscribe(topic("fresh-1", CMD)))
    m.close()


def test_revoke_kicks_the_device_and_refuses_its_return(managed: ManagedHub) -> None:
    body = managed.enroll("lost-1")
    password, token = body["mqtt"]["password"], body["token"]
    m = Mqtt(managed.broker.port, "lost-1", password)
    assert not m.connect().is_failure
    t, p = status("lost-1")
    m.publish(t, p, retain=True)  # "online", retained; the kick sends no will
    client = managed.app.test_client()
    assert client.post("/api/v1/devices/lost-1/revoke", headers=managed.operator).status_code == 403
    r = client.post("/api/v1/devices/lost-1/revoke", headers=managed.admin)
    assert r.status_code == 200 and r.get_json()["broker"] == "removed"
    assert m.disconnected.wait(10), "the broker must disconnect a revoked device at once"
    m.close()
    again = Mqtt(managed.broker.port, "lost-1", password)
    assert again.connect().is_failure
    again.close()
    got = client.get("/api/v1/models/digits/1/bundle", headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 401
    # no retained "online" is left for a hub (re)starting later to believe
    watcher = hub_login(managed)
    watcher.subscribe("edgekit/v1/+/status")
    other = device_login(managed, "other-1")
    other.publish(topic("other-1", STATUS), b"marker")
    watcher.wait_message(topic("other-1", STATUS), b"marker")
    assert topic("lost-1", STATUS) not in watcher.topics()
    for conn in (watcher, other):
        conn.close()
    # the hub's own reconnect reconciles nothing left (the account is gone already)
    with managed.db.session() as s:
        d = s.get(Device, "lost-1")
        assert d is not None and d.revoked and d.mqtt_secret is None and d.token_hash is None


def test_revocation_while_the_broker_was_away_applies_when_the_hub_reconnects(
    managed: ManagedHub,
) -> None:
    password = managed.enroll("away-1")["mqtt"]["password"]
    managed.broker.stop()
    r = managed.app.test_client().post("/api/v1/devices/away-1/revoke", headers=managed.admin)
    assert r.status_code == 200 and r.get_json()["broker"].startswith("unreachable")
    managed.broker.start()  # still holds away-1's account (the file the broker saved)
    before = Mqtt(managed.broker.port, "away-1", password)
    assert not before.connect().is_failure
    # an account the database does not hold yet (an enrollment in flight) is left alone
    with DynsecControl(BrokerSettings.resolve(managed.config, managed.db)) as control:
        control.put_device("in-flight-1", "its-password")
    bridge = MqttBridge(managed.config, managed.db).start()
    try:
        assert bridge.reconciled.wait(15)
        assert before.disconnected.wait(10)
        after = Mqtt(managed.broker.port, "away-1", password)
        assert after.connect().is_failure
        after.close()
        kept = Mqtt(managed.broker.port, "in-flight-1", "its-password")
        assert not kept.connect().is_failure
        kept.close()
    finally:
        before.close()
        bridge.stop()


def test_forged_reports_never_reach_the_hubs_state(managed: ManagedHub) -> None:
    """The findings' attacks from another device's identity: a forged retained status, three
    bad telemetry messages (which rolled a rollout back) and a forged "committed" event (which
    completed a deploy that never ran), all for dev-b, published by dev-a."""
    bridge = MqttBridge(managed.config, managed.db).start()
    a = device_login(managed, "dev-a")
    device_login(managed, "dev-b").close()
    try:
        assert bridge.wait_connected(10) and bridge.subscribed.wait(10)
        t, p = status("dev-b", version=9)
        a.publish(t, p, retain=True)
        for seq in (1, 2, 3):
            t, p = telemetry("dev-b", seq, error_rate=0.9, errors={"crash": 45})
            a.publish(t, p)
        t, p = event("dev-b", 1, "committed", rollout="r-1", command="c-1", version=9)
        a.publish(t, p)
        assert all(c.is_failure for c in a.subscribe(topic("dev-b", CMD))), "no deploy to answer"
        t, p = telemetry("dev-a", 1)  # the marker, after every forgery
        a.publish(t, p)

        def marker_stored() -> bool:
            with managed.db.session() as s:
                return s.query(TelemetryRaw).filter_by(device_id="dev-a").count() == 1

        wait_for(marker_stored, 15, "dev-a's own telemetry stored")
        with managed.db.session() as s:
            b = s.get(Device, "dev-b")
            assert b is not None and not b.online and b.model_version is None and not b.kpis
            assert s.query(TelemetryRaw).filter_by(device_id="dev-b").count() == 0
            assert s.query(EventRow).filter_by(device_id="dev-b").count() == 0
        assert bridge.counters["received"] == 1
    finally:
        a.close()
        bridge.stop()


def test_the_hubs_own_accounts_file_is_what_the_broker_saves(managed: ManagedHub) -> None:
    """The plugin saves account changes into the generated file (so they survive restarts)."""
    managed.enroll("saved-1")
    path = managed.broker.generated / "dynamic-security.json"
    wait_for(lambda: "saved-1" in path.read_text(), 10, "the broker saved the new account")
    doc = json.loads(path.read_text())
    assert {c["username"] for c in doc["clients"]} >= {HUB_USERNAME, "saved-1"}
    managed.broker.stop()
    managed.broker.start()
    m = Mqtt(managed.broker.port, HUB_USERNAME, hub_password_of(managed))
    assert not m.connect().is_failure
    m.close()


def hub_password_of(hub: ManagedHub) -> str:
    with hub.db.session() as s:
        return hub_password(s)
