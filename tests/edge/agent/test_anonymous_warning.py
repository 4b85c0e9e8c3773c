"""The agent says so at start when it would log in to its broker with no account."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.agent.agent import anonymous_login
from edge.agent.config import AgentConfig
from edge.messaging import MemoryBroker, MemoryTransport

ENROLLED = {"token": "t", "mqtt": {"username": "dev-a", "password": "p"}}


@pytest.mark.parametrize(
    ("fields", "credentials", "anonymous"),
    [
        ({}, None, True),
        ({}, ENROLLED, False),
        ({"username": "u", "password": "p"}, None, False),
        ({"broker": "mqtt://u:p@127.0.0.1:1883"}, None, False),
    ],
)
def test_anonymous_login(
    tmp_path: Path, fields: dict[str, str], credentials: dict[str, object] | None, anonymous: bool
) -> None:
    cfg = AgentConfig(device_id="dev-a", data_dir=tmp_path, **fields)  # type: ignore[arg-type]
    assert anonymous_login(cfg, credentials) is anonymous


def test_a_client_certificate_is_an_identity(tmp_path: Path) -> None:
    for name in ("c.crt", "c.key", "ca.crt"):
        (tmp_path / name).write_text("x")
    cfg = AgentConfig(device_id="dev-a", data_dir=tmp_path, broker="mqtts://h:8883",
                      ca_file=tmp_path / "ca.crt", cert_file=tmp_path / "c.crt",
                      key_file=tmp_path / "c.key")  # fmt: skip
    assert not anonymous_login(cfg, None)


def test_start_warns_when_anonymous(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = AgentConfig(device_id="dev-a", data_dir=tmp_path, telemetry_interval=3600)
    agent = Agent(cfg, MemoryTransport(MemoryBroker(), "dev-a"))
    with caplog.at_level(logging.WARNING, logger="edgekit.agent"):
        agent.start()
    try:
        assert any("anonymously" in r.getMessage() for r in caplog.records)
    finally:
        agent.stop()
