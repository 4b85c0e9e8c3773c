"""The broker account enrollment stores: which MQTT login the agent uses, and damaged
stored accounts named clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.agent import config
from edge.agent.agent import mqtt_transport
from edge.agent.enrollment import CREDENTIALS, load_credentials, mqtt_login, save_credentials
from edge.errors import ConfigError

CREDS = {"device": "cam-1", "token": "ekd_x", "mqtt": {"username": "cam-1", "password": "pw1"}}


def test_the_configured_login_wins_over_the_stored_account() -> None:
    assert mqtt_login(None, None, CREDS) == ("cam-1", "pw1")
    assert mqtt_login("ops", "secret", CREDS) == ("ops", "secret")
    assert mqtt_login(None, None, {"token": "ekd_x"}) == (None, None)
    assert mqtt_login(None, None, None) == (None, None)


def test_the_agents_transport_logs_in_with_the_stored_account(tmp_path: Path) -> None:
    pytest.importorskip("paho.mqtt.client")
    save_credentials(tmp_path, CREDS)
    cfg = config.load({"device_id": "cam-1", "data_dir": str(tmp_path)}, environ={})
    t = mqtt_transport(cfg, load_credentials(tmp_path))
    assert (t.settings.username, t.settings.password) == ("cam-1", "pw1")  # type: ignore[attr-defined]
    flags = {"device_id": "cam-1", "data_dir": str(tmp_path), "username": "ops",
             "password": "x"}  # fmt: skip
    t = mqtt_transport(config.load(flags, environ={}), load_credentials(tmp_path))
    assert t.settings.username == "ops"  # type: ignore[attr-defined]
    url = {"device_id": "cam-1", "data_dir": str(tmp_path), "broker": "mqtt://u:p@127.0.0.1:1883"}
    t = mqtt_transport(config.load(url, environ={}), load_credentials(tmp_path))
    # the URL's own login is used, not replaced
    assert t.settings.username is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("mqtt", [[], {"username": "cam-1"}, {"username": "", "password": "x"}])
def test_a_damaged_stored_account_names_the_file(tmp_path: Path, mqtt: object) -> None:
    (tmp_path / CREDENTIALS).write_text(json.dumps({"token": "ekd_x", "mqtt": mqtt}))
    with pytest.raises(ConfigError, match="malformed 'mqtt'"):
        load_credentials(tmp_path)
