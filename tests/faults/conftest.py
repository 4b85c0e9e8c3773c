"""What the fault tests share: the hub tests' signing keys and small real bundles, a
private persistent Mosquitto and an observer on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cloud.hub.conftest import keys, make_bundle  # noqa: F401 - pytest fixtures
from tests.edge.brokers import MOSQUITTO
from tests.faults.rig import Mqtt, PersistentBroker
from tests.services import need_service
from tests.waiting import wait_for


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PersistentBroker]:
    if not Path(MOSQUITTO).exists():
        need_service(False, "mosquitto is not installed")
    b = PersistentBroker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def observer(broker: PersistentBroker) -> Iterator[Mqtt]:
    m = Mqtt(broker.port)
    wait_for(m.client.is_connected, 10, "the observer's connection")
    yield m
    m.close()
