"""A hub app (no background workers) whose broker is a real Mosquitto running the
configuration ``broker-config`` generated from the hub's database."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloud.hub.app import create_app
from cloud.hub.broker import write_broker_config
from cloud.hub.config import HubConfig
from cloud.hub.http.auth import create_api_token, create_enrollment_token
from tests.cloud.hub.broker.managed import PLUGIN, ManagedBroker
from tests.edge.brokers import MOSQUITTO
from tests.services import need_service


@dataclass
class ManagedHub:
    app: Any
    config: HubConfig
    broker: ManagedBroker
    admin: dict[str, str]
    operator: dict[str, str]

    @property
    def db(self) -> Any:
        return self.app.extensions["edgekit_hub"].db

    def enroll_token(self, tags: tuple[str, ...] = ()) -> str:
        with self.db.session() as s:
            return create_enrollment_token(s, list(tags), 3600.0)

    def enroll(self, device: str) -> dict[str, Any]:
        """Enroll ``device`` through the hub's API; the response."""
        r = self.app.test_client().post(
            "/api/v1/enroll", json={"token": self.enroll_token(), "device": device}
        )
        assert r.status_code == 200, r.get_json()
        body: dict[str, Any] = r.get_json()
        return body


def have_mosquitto() -> None:
    need_service(Path(MOSQUITTO).is_file(), "mosquitto is not installed")
    need_service(PLUGIN.is_file(), f"Mosquitto's dynamic-security plugin {PLUGIN} is missing")


@pytest.fixture
def managed(tmp_path: Path, keys: tuple[Path, Path]) -> Iterator[ManagedHub]:
    have_mosquitto()
    generated = tmp_path / "broker-conf"
    broker = ManagedBroker(tmp_path / "mosquitto", generated)
    cfg = HubConfig(
        data_dir=tmp_path / "hub", trusted_key=keys[1], background=False, testing=True,
        broker_url=broker.url, bridge_writer="thread",
    )  # fmt: skip
    app = create_app(cfg)
    db = app.extensions["edgekit_hub"].db
    with db.session() as s:
        write_broker_config(s, generated)
        admin = {"Authorization": f"Bearer {create_api_token(s, 'admin', 'admin')}"}
        operator = {"Authorization": f"Bearer {create_api_token(s, 'operator', 'op')}"}
    broker.start()
    try:
        yield ManagedHub(app, cfg, broker, admin, operator)
    finally:
        broker.stop()
        app.extensions["edgekit_hub"].stop()
        db.dispose()
