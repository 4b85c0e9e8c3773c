"""Broker accounts without a broker: the generated configuration, the enrollment response,
revocation (API, page's CSRF, CLI), the hub's login settings and the bridge's check that a
report's payload names its topic's device."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from cloud.hub.broker import (
    HUB_PASSWORD_SECRET,
    HUB_USERNAME,
    BrokerSettings,
    check_password,
    hub_password,
    write_broker_config,
)
from cloud.hub.config import HubConfig
from cloud.hub.http.auth import create_enrollment_token, create_user
from cloud.hub.ingest import MqttBridge
from cloud.hub.storage import Database, Device, EnrollmentToken, EventRow, HubSecret
from edge.cli import main
from edge.errors import ConfigError
from tests.cloud.hub.helpers import event, status, telemetry
from tests.edge.brokers import free_port


def hub_db(app: Any) -> Database:
    db: Database = app.extensions["edgekit_hub"].db
    return db


def enroll(client: Any, app: Any, device: str) -> Any:
    with hub_db(app).session() as s:
        token = create_enrollment_token(s, [], 3600.0)
    return client.post("/api/v1/enroll", json={"token": token, "device": device}), token


def err(resp: Any) -> str:
    code: str = resp.get_json()["error"]["code"]
    return code


# --------------------------------------------------------------------------- broker-config


def test_broker_config_writes_a_listenerless_fragment_and_the_seeded_accounts(
    app: Any, client: Any, hub_config: HubConfig, tmp_path: Path, capsys: Any
) -> None:
    for dev in ("cam-1", "cam-2", "cam-gone"):
        assert enroll(client, app, dev)[0].status_code == 200
    with hub_db(app).session() as s:
        s.add(Device(id="never-enrolled", tags=[], capabilities={}, kpis={}))
        s.commit()
    assert client.post("/api/v1/devices/cam-gone/revoke", headers=admin(app)).status_code == 200
    out = tmp_path / "rel" / ".." / "broker"
    args = ["hub", "broker-config", "--data-dir", str(hub_config.data_dir), "--out", str(out)]
    assert main(args) == 0
    assert "2 device accounts" in capsys.readouterr().out
    out = out.resolve()
    conf = (out / "mosquitto.conf").read_text()
    lines = [ln for ln in conf.splitlines() if ln and not ln.startswith("#")]
    assert not any(ln.startswith(("listener", "port ", "bind_address")) for ln in lines)
    assert "allow_anonymous false" in lines
    plugin = next(ln.split(" ", 1)[1] for ln in lines if ln.startswith("plugin "))
    assert Path(plugin).is_absolute() and plugin.endswith("mosquitto_dynamic_security.so")
    assert f"plugin_opt_config_file {out / 'dynamic-security.json'}" in lines
    dynsec = out / "dynamic-security.json"
    assert stat.S_IMODE(dynsec.stat().st_mode) == 0o600
    doc = json.loads(dynsec.read_text())
    assert doc["defaultACLAccess"] == {
        "publishClientSend": False, "publishClientReceive": False,
        "subscribe": False, "unsubscribe": False,
    }  # fmt: skip
    clients = {c["username"]: c for c in doc["clients"]}
    assert set(clients) == {HUB_USERNAME, "cam-1", "cam-2"}  # not revoked, not unenrolled
    with hub_db(app).session() as s:
        password = hub_password(s)
        secrets = {d: s.get(Device, d).mqtt_secret for d in ("cam-1", "cam-2")}  # type: ignore[union-attr]
    assert check_password(clients[HUB_USERNAME], password)
    for dev, secret in secrets.items():
        assert {k: clients[dev][k] for k in ("salt", "password", "iterations")} == secret
    roles = {r["rolename"]: r for r in doc["roles"]}
    assert {a["topic"] for a in roles["edgekit-device-cam-1"]["acls"]} == {
        f"edgekit/v1/cam-1/{leaf}"
        for leaf in ("status", "telemetry", "events", "infer/res", "cmd", "infer/req")
    }
    assert all(a["allow"] for r in doc["roles"] for a in r["acls"])
    hub_topics = {a["topic"] for a in roles["edgekit-hub"]["acls"]}
    assert "$CONTROL/dynamic-security/v1" in hub_topics and "edgekit/v1/+/cmd" in hub_topics
    assert main(args) == 0  # again: the same hub password, not a new one
    with hub_db(app).session() as s:
        assert hub_password(s) == password
        assert s.query(HubSecret).filter_by(name=HUB_PASSWORD_SECRET).count() == 1


def test_broker_config_names_a_missing_plugin(tmp_path: Path, capsys: Any) -> None:
    args = ["hub", "broker-config", "--data-dir", str(tmp_path / "hub"), "--out",
            str(tmp_path / "out"), "--plugin", str(tmp_path / "nope.so")]  # fmt: skip
    assert main(args) == 1
    assert "nope.so does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out" / "dynamic-security.json").exists()


# --------------------------------------------------------------------------- enrollment


def test_enrollment_hands_out_a_broker_account_kept_only_as_a_hash(app: Any, client: Any) -> None:
    resp, _ = enroll(client, app, "cam-1")
    assert resp.status_code == 200
    mqtt = resp.get_json()["mqtt"]
    assert mqtt["username"] == "cam-1" and len(mqtt["password"]) >= 40
    with hub_db(app).session() as s:
        secret = s.get(Device, "cam-1").mqtt_secret  # type: ignore[union-attr]
    assert check_password(secret, mqtt["password"]) and not check_password(secret, "guess")
    assert mqtt["password"] not in json.dumps(secret)


def test_enrollment_fails_with_503_and_consumes_nothing_when_the_broker_is_down(
    tmp_path: Path, keys: Any
) -> None:
    from cloud.hub.app import create_app
    from cloud.hub.broker import write_broker_config

    cfg = HubConfig(data_dir=tmp_path / "hub", trusted_key=keys[1], background=False,
                    testing=True, broker_url=f"mqtt://127.0.0.1:{free_port()}")  # fmt: skip
    app = create_app(cfg)
    try:
        with hub_db(app).session() as s:  # broker-config ran: the hub manages this broker
            write_broker_config(s, tmp_path / "broker-conf")
        client = app.test_client()
        resp, _token = enroll(client, app, "cam-1")
        assert resp.status_code == 503 and err(resp) == "broker_unavailable"
        assert "unreachable" in resp.get_json()["error"]["message"]
        with hub_db(app).session() as s:
            assert s.get(Device, "cam-1") is None
            row = s.query(EnrollmentToken).one()
            assert row.used_at is None and row.used_by is None
    finally:
        app.extensions["edgekit_hub"].stop()
        hub_db(app).dispose()


# --------------------------------------------------------------------------- revocation


def admin(app: Any) -> dict[str, str]:
    from cloud.hub.http.auth import create_api_token

    with hub_db(app).session() as s:
        return {"Authorization": f"Bearer {create_api_token(s, 'admin', 'root')}"}


def test_revoke_cuts_the_token_and_the_account_and_is_recorded(
    app: Any, client: Any, tokens: Any
) -> None:
    body = enroll(client, app, "cam-1")[0].get_json()
    device_auth = {"Authorization": f"Bearer {body['token']}"}
    assert client.get("/api/v1/models/x/1/bundle", headers=device_auth).status_code == 404
    for role in ("viewer", "operator"):
        r = client.post("/api/v1/devices/cam-1/revoke", headers=tokens[role])
        assert r.status_code == 403 and err(r) == "forbidden"
    r = client.post("/api/v1/devices/nobody/revoke", headers=tokens["admin"])
    assert r.status_code == 404 and err(r) == "not_found"
    r = client.post("/api/v1/devices/cam-1/revoke", headers=tokens["admin"])
    assert r.status_code == 200
    assert r.get_json()["broker"] == "not managed" and r.get_json()["revoked"] > 0
    assert client.get("/api/v1/models/x/1/bundle", headers=device_auth).status_code == 401
    with hub_db(app).session() as s:
        d = s.get(Device, "cam-1")
        assert d is not None and d.mqtt_secret is None and d.token_hash is None
        assert d.revoked is not None and not d.enrolled
    events = client.get("/api/v1/devices/cam-1/events", headers=tokens["viewer"]).get_json()
    assert events[0]["step"] == "revoked" and events[0]["detail"]["actor"] == "token admin"
    # a revoked id is no longer enrolled: a new enrollment token gives it a working identity
    again = enroll(client, app, "cam-1")[0]
    assert again.status_code == 200, again.get_json()
    with hub_db(app).session() as s:
        d = s.get(Device, "cam-1")
        assert d is not None and d.revoked is None and d.enrolled
        assert check_password(d.mqtt_secret, again.get_json()["mqtt"]["password"])


def test_the_page_revokes_with_a_csrf_protected_session(app: Any, client: Any) -> None:
    enroll(client, app, "cam-1")
    with hub_db(app).session() as s:
        create_user(s, "root", "correct horse", "admin")
    csrf = client.get("/api/v1/session").get_json()["csrf_token"]
    login = {"username": "root", "password": "correct horse"}
    csrf = client.post("/api/v1/session", json=login, headers={"X-CSRFToken": csrf}).get_json()[
        "csrf_token"
    ]
    page = client.get("/devices/cam-1").get_data(as_text=True)
    assert 'id="revoke-button"' in page and 'data-needs="admin"' in page
    r = client.post("/api/v1/devices/cam-1/revoke", json={})
    assert r.status_code == 400 and err(r) == "csrf"
    with hub_db(app).session() as s:
        assert s.get(Device, "cam-1").revoked is None  # type: ignore[union-attr]
    r = client.post("/api/v1/devices/cam-1/revoke", json={}, headers={"X-CSRFToken": csrf})
    assert r.status_code == 200
    with hub_db(app).session() as s:
        row = s.query(EventRow).filter_by(device_id="cam-1", step="revoked").one()
        assert row.detail["actor"] == "user root"


def test_revoke_device_cli(app: Any, client: Any, hub_config: HubConfig, capsys: Any) -> None:
    enroll(client, app, "cam-1")
    d = ["--data-dir", str(hub_config.data_dir)]
    assert main(["hub", "revoke-device", "cam-1", *d]) == 0
    assert "broker account not managed" in capsys.readouterr().out
    with hub_db(app).session() as s:
        assert s.get(Device, "cam-1").revoked is not None  # type: ignore[union-attr]
    assert main(["hub", "revoke-device", "ghost", *d]) == 1
    assert "unknown" in capsys.readouterr().err


# --------------------------------------------------------------------------- hub login


def test_broker_settings_pick_the_hub_account_from_the_database(
    app: Any, hub_config: HubConfig
) -> None:
    db = hub_db(app)
    cfg = HubConfig(data_dir=hub_config.data_dir, broker_url="mqtt://127.0.0.1:1")
    anonymous = BrokerSettings.resolve(cfg, db)
    assert anonymous.username is None and not anonymous.managed
    with db.session() as s:
        password = hub_password(s)
    # the hub account alone (e.g. the demo's embedded broker checks it) manages nothing
    plain = BrokerSettings.resolve(cfg, db)
    assert (plain.username, plain.password, plain.managed) == (HUB_USERNAME, password, False)
    with db.session() as s:
        write_broker_config(s, hub_config.data_dir / "broker-conf")
    ours = BrokerSettings.resolve(cfg, db)
    assert (ours.username, ours.password, ours.managed) == (HUB_USERNAME, password, True)
    explicit = HubConfig(data_dir=hub_config.data_dir, broker_url="mqtt://127.0.0.1:1",
                         mqtt_username=HUB_USERNAME, mqtt_password=password)  # fmt: skip
    assert BrokerSettings.resolve(explicit, db).managed
    other = HubConfig(data_dir=hub_config.data_dir, broker_url="mqtts://b:8883",
                      mqtt_username="ops", mqtt_password="pw")  # fmt: skip
    theirs = BrokerSettings.resolve(other, db)
    assert (theirs.username, theirs.managed, theirs.tls, theirs.port) == ("ops", False, True, 8883)


def test_hub_config_checks_the_mqtt_login(tmp_path: Path, monkeypatch: Any) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(ConfigError, match="mqtt_ca_file"):
        HubConfig(data_dir=tmp_path, mqtt_ca_file=tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match="give both"):
        HubConfig(data_dir=tmp_path, mqtt_cert_file=ca)
    with pytest.raises(ConfigError, match="needs mqtt_username"):
        HubConfig(data_dir=tmp_path, mqtt_password="pw")
    monkeypatch.setenv("EDGEKIT_HUB_MQTT_USERNAME", "ops")
    monkeypatch.setenv("EDGEKIT_HUB_MQTT_PASSWORD", "pw")
    monkeypatch.setenv("EDGEKIT_HUB_MQTT_CA_FILE", str(ca))
    monkeypatch.setenv("EDGEKIT_HUB_MQTT_TLS_INSECURE", "true")
    cfg = HubConfig.from_env(data_dir=tmp_path)
    assert (cfg.mqtt_username, cfg.mqtt_password, cfg.mqtt_ca_file) == ("ops", "pw", ca)
    assert cfg.mqtt_tls_insecure is True


def test_an_anonymous_hub_warns_at_start(
    app: Any, hub_config: HubConfig, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = HubConfig(data_dir=hub_config.data_dir, broker_url=f"mqtt://127.0.0.1:{free_port()}")
    with caplog.at_level(logging.WARNING, "cloud.hub.ingest.bridge"):
        bridge = MqttBridge(cfg, hub_db(app)).start()
        bridge.stop()
    assert any("anonymously" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- bridge sanity


def test_the_bridge_ignores_a_report_naming_another_device(app: Any, hub_config: HubConfig) -> None:
    """Even with an ACL gap, a report on attacker's topic that names victim in its payload
    changes neither device (the payload's ``device`` must equal the topic's)."""
    cfg = HubConfig(data_dir=hub_config.data_dir, broker_url="mqtt://127.0.0.1:1")
    bridge = MqttBridge(cfg, hub_db(app))
    forged = [status("victim", version=9), telemetry("victim", 1), event("victim", 1, "committed")]
    moved = [(t.replace("/victim/", "/attacker/"), p) for t, p in forged]
    bridge.flush(moved)
    assert bridge.counters["rejected"] == 3 and not bridge.counters["stored"]
    with hub_db(app).session() as s:
        assert s.get(Device, "victim") is None and s.get(Device, "attacker") is None
        assert s.query(EventRow).count() == 0
    bridge.flush(forged)  # the same reports on their own topics are stored
    assert bridge.counters["stored"] == 3


def test_mqtt_secret_files_are_never_world_readable(tmp_path: Path, app: Any) -> None:
    with hub_db(app).session() as s:
        files = write_broker_config(s, tmp_path / "b")
    assert stat.S_IMODE(os.stat(files.dynsec).st_mode) & 0o077 == 0


def test_the_agent_stores_the_account_enrollment_gives(app: Any, tmp_path: Path) -> None:
    from werkzeug.serving import make_server

    from edge.agent import enroll as agent_enroll
    from edge.agent import load_credentials

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hub-http", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        with hub_db(app).session() as s:
            token = create_enrollment_token(s, ["lab"], 3600.0)
        creds = agent_enroll(url, token, "cam-9", tmp_path / "agent")
    finally:
        server.shutdown()
        thread.join(5)
    stored = load_credentials(tmp_path / "agent")
    assert stored == creds and stored["mqtt"]["username"] == "cam-9"
    assert stat.S_IMODE((tmp_path / "agent" / "credentials.json").stat().st_mode) == 0o600
    assert "BEGIN PUBLIC KEY" in stored["command_key"]
    with hub_db(app).session() as s:
        secret = s.get(Device, "cam-9").mqtt_secret  # type: ignore[union-attr]
    assert check_password(secret, stored["mqtt"]["password"])
