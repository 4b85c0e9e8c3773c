"""The attack lab: a real Agent on a MemoryBroker, commanded with signed commands as the hub
sends them, downloading from a simulated repository (tests/edge/attacks/repository.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge import contract as c
from edge.agent import Agent, config
from edge.messaging import MemoryBroker, MemoryTransport
from tests.bundles import make_bundle, raw_digit
from tests.commands import command, write_hub_key
from tests.edge.attacks.repository import Repository
from tests.waiting import wait_for

DEV = "dev-1"
TOKEN = "dev-token"
# files the agent keeps by design; anything else new after a refusal is debris
BOOKKEEPING = {"command-nonces.json", "keyring.json", "state.json", "credentials.json", "downloads"}
OUTCOMES = ("failed", "committed", "rolled_back")


@pytest.fixture(scope="session")
def attack_kit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Keys A (configured), B (rotated to) and C (nobody's), and the bundles signed with them."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from cloud.keys import generate_keypair

    root = tmp_path_factory.mktemp("attack-kit")
    kit: dict[str, Path] = {}
    for k in ("a", "b", "c"):
        kit[f"priv_{k}"], kit[f"pub_{k}"] = generate_keypair(root / f"key-{k}")
    a, b, c_ = kit["priv_a"], kit["priv_b"], kit["priv_c"]
    kit |= {
        "d1": make_bundle(root / "d1.ekb", a, version=1),
        "d2": make_bundle(root / "d2.ekb", a, version=2, seed=2),
        "d3": make_bundle(root / "d3.ekb", a, version=3, seed=3),
        "d2_evil": make_bundle(root / "d2e.ekb", a, version=2, seed=66),  # same name+version
        "d999": make_bundle(root / "d999.ekb", a, version=999, seed=9),
        "other1": make_bundle(root / "o1.ekb", a, version=1, name="other", seed=5),
        "d2_b": make_bundle(root / "d2b.ekb", b, version=2, seed=2),
        "d3_b": make_bundle(root / "d3b.ekb", b, version=3, seed=3),
        "d2_c": make_bundle(root / "d2c.ekb", c_, version=2, seed=2),
    }
    return kit


def sha(data: bytes | Path) -> str:
    return hashlib.sha256(data.read_bytes() if isinstance(data, Path) else data).hexdigest()


class Lab:
    """One device under attack. ``start()`` provisions digits-1 from a local bundle."""

    def __init__(self, tmp: Path, kit: dict[str, Path]) -> None:
        self.tmp, self.kit = tmp, kit
        self.repo = Repository(token=TOKEN)
        self.evil = Repository()  # an attacker's server: must never see a request
        self.broker = MemoryBroker()
        self.client = MemoryTransport(self.broker, "client")
        self.client.connect()
        self.data = tmp / "data"
        self.data.mkdir()
        self.enrolled_with(self.repo.origin)
        self.settings: dict[str, Any] = {
            "device_id": DEV,
            "data_dir": str(self.data),
            "trusted_key": str(kit["pub_a"]),
            "command_keys": str(write_hub_key(tmp / "hub-key")),
            "bundle": str(kit["d1"]),
            "probation_seconds": "0.3",
            "selftest_time_budget": "0.1",
            "telemetry_interval": "3600",
            "download_timeout": "20",
        }
        self.agent: Agent | None = None

    def enrolled_with(self, hub: str) -> None:
        """Credentials as enrollment with ``hub`` leaves them (the origin tokens go to)."""
        creds = {"device": DEV, "token": TOKEN, "hub": hub}
        (self.data / "credentials.json").write_text(json.dumps(creds))

    # ------------------------------------------------------------------ agent

    def start(self, **overrides: Any) -> Agent:
        cfg = config.load({**self.settings, **overrides}, environ={})
        self.agent = Agent(cfg, MemoryTransport(self.broker, DEV))
        self.agent.start()
        return self.agent

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
            self.agent = None

    def close(self) -> None:
        self.stop()
        self.repo.close()
        self.evil.close()

    # ------------------------------------------------------------------ commands

    def send(self, kind: str, **fields: Any) -> str:
        payload = command(kind, DEV, **fields)
        self.client.publish(c.topic(DEV, c.CMD), json.dumps(payload).encode(), qos=1)
        return str(payload["id"])

    def deploy(
        self, bundle: Path | bytes, version: int, name: str = "digits", **fields: Any
    ) -> str:
        """Serve ``bundle`` honestly and send a deploy for it (``fields`` override any part:
        ``url``, ``sha256``, ``size``, ``expires``...)."""
        data = bundle.read_bytes() if isinstance(bundle, Path) else bundle
        url = self.repo.add(data, f"{sha(data)[:16]}.ekb")
        body = {"name": name, "version": version, "url": url, "sha256": sha(data),
                "size": len(data), "rollout": "r1", **fields}  # fmt: skip
        return self.send("deploy", **body)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in self.broker.messages(c.topic(DEV, c.EVENTS))]

    def outcome(self, cid: str, timeout: float = 30.0) -> dict[str, Any]:
        """The event that settles command ``cid`` (once the install thread is idle again)."""

        def find() -> dict[str, Any] | None:
            for e in self.events():
                if e["command"] == cid and (
                    e["step"] in OUTCOMES or e["kind"] in ("error", "info")
                ):
                    return e
            return None

        event = wait_for(find, timeout, what=f"the outcome of {cid}")
        assert self.agent is not None and self.agent.installer.wait_idle(timeout)
        return event

    def refused(self, cid: str, reason: str) -> dict[str, Any]:
        """Assert ``cid`` was refused with ``reason`` in the event's reason; return it."""
        event = self.outcome(cid)
        assert event["step"] == "failed" or event["kind"] == "error", event
        text = json.dumps(event["detail"]) + event["message"]
        assert reason in text, event
        return event

    # ------------------------------------------------------------------ device state

    def serving(self) -> str | None:
        """The id of the model the device serves (and answers an inference with)."""
        assert self.agent is not None
        current = self.agent.server.current
        if current is None:
            return None
        active = self.agent.store.active()
        assert active is not None and active.id == current.slot.id
        self.agent.predict(raw_digit())
        return current.slot.id

    def files(self) -> set[Path]:
        return {p for p in self.data.rglob("*") if "outbox" not in p.relative_to(self.data).parts}

    def leftovers(self, before: set[Path]) -> set[Path]:
        return {p for p in self.files() - before if p.name not in BOOKKEEPING}


@pytest.fixture
def lab(tmp_path: Path, attack_kit: dict[str, Path]) -> Iterator[Lab]:
    lab = Lab(tmp_path, attack_kit)
    yield lab
    lab.close()
