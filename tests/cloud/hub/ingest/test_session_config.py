"""The persistent-session settings: a client id NATS and MQTT 3.1.1 brokers accept, and a
Session Expiry Interval MQTT 5 can carry, from code or the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloud.hub.config import HubConfig
from edge.errors import ConfigError


def test_session_settings_are_checked(tmp_path: Path) -> None:
    assert HubConfig(data_dir=tmp_path).mqtt_session_expiry_s == 3600.0
    assert HubConfig(data_dir=tmp_path, mqtt_client_id="site_a-hub-1").mqtt_client_id
    for bad in ("hub.one", "", "a b", "x" * 65):
        with pytest.raises(ConfigError, match="mqtt_client_id"):
            HubConfig(data_dir=tmp_path, mqtt_client_id=bad)
    for expiry in (-1, 2**32, "soon"):
        with pytest.raises(ConfigError, match="mqtt_session_expiry_s"):
            HubConfig(data_dir=tmp_path, mqtt_session_expiry_s=expiry)  # type: ignore[arg-type]


def test_session_settings_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EDGEKIT_HUB_MQTT_CLIENT_ID", "hub-a")
    monkeypatch.setenv("EDGEKIT_HUB_MQTT_SESSION_EXPIRY_S", "0")
    cfg = HubConfig.from_env(data_dir=tmp_path)
    assert cfg.mqtt_client_id == "hub-a" and cfg.mqtt_session_expiry_s == 0.0


def test_the_share_group_is_per_fleet_unless_configured(tmp_path: Path) -> None:
    """Two fleets' hubs on one broker must not split each other's messages: the default
    group carries the database's tag; a configured one is checked as a topic level."""
    from cloud.hub.ingest import MqttBridge
    from cloud.hub.ingest.session import fleet_tag
    from cloud.hub.storage import Database

    for bad in ("a/b", "a+", "#", ""):
        with pytest.raises(ConfigError, match="mqtt_share_group"):
            HubConfig(data_dir=tmp_path / "x", mqtt_share_group=bad)
    groups = []
    for name in ("one", "two"):
        cfg = HubConfig(data_dir=tmp_path / name, broker_url="mqtt://127.0.0.1:1")
        cfg.data_dir.mkdir(parents=True)
        db = Database(cfg.database_url())
        db.migrate()
        bridge = MqttBridge(cfg, db)
        bridge.start()
        try:
            groups.append(bridge.share_group)
            assert bridge.share_group == f"edgekit-hub-{fleet_tag(db)}"
        finally:
            bridge.stop()
    assert groups[0] != groups[1]
