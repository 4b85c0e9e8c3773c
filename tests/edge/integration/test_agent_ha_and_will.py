"""Real agents on the real Mosquitto (127.0.0.1:1883): Home Assistant discovery retained and
re-sent on Home Assistant's ``online``, off by default; the ``offline`` will keeps the model
after a crash and after an install; request ids keep their type; and every message captured
from the run validates against docs/schemas with draft-07 (jsonschema and ajv 8 in Node)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge import contract as c
from edge.agent.ha_discovery import config_topic, device_config
from tests.bundles import raw_digit
from tests.commands import command
from tests.edge.agent_helpers import FileServer
from tests.edge.agent_kit import kit_fixture  # noqa: F401 - pytest fixture "kit"
from tests.edge.integration.test_agent_mqtt import (  # noqa: F401 - fixtures
    AgentProcess,
    Client,
    _need_mosquitto,
    agent_args,
    online,
)
from tests.edge.integration.test_agent_mqtt import client as client
from tests.edge.integration.test_agent_mqtt import device as device
from tests.services import need_service
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[3]
SCHEMAS = ROOT / "docs" / "schemas"
AJV_CHECK = ROOT / "tests" / "edge" / "contract" / "ajv_check.cjs"
NODE_MODULES = Path(
    os.environ.get("EDGEKIT_NODE_MODULES", Path.home() / ".cache" / "edgekit-node" / "node_modules")
)


def retained(topic: str, timeout: float = 10) -> bytes:
    """What a client that subscribes now receives as the retained message of ``topic``."""
    fresh = Client()
    try:
        fresh.subscribe(topic)

        def got() -> bytes | None:
            with fresh.lock:
                return next((p for t, p, r in fresh.messages if t == topic and r), None)

        return wait_for(got, timeout)
    finally:
        fresh.close()


# ----------------------------------------------------------------------------- HA discovery


def test_ha_discovery_retained_and_republished_on_ha_online(
    tmp_path: Path, kit: dict[str, Path], device: str, client: Client
) -> None:
    topic = config_topic("homeassistant", device)
    client.subscribe(topic)
    agent = AgentProcess(agent_args(device, tmp_path, kit, "--bundle", str(kit["v1"]),
                                    "--ha-discovery"))  # fmt: skip
    try:
        online(client, device)
        cfg = json.loads(retained(topic))
        assert cfg == device_config(device)
        assert cfg["availability"][0]["topic"] == c.topic(device, c.STATUS)
        assert {comp["state_topic"] for comp in cfg["cmps"].values()} == {
            c.topic(device, c.TELEMETRY),
            c.topic(device, c.STATUS),
        }
        sent = len(client.on(topic))
        client.publish("homeassistant/status", b"offline")
        client.publish("homeassistant/status", b"online")  # Home Assistant's birth message
        wait_for(lambda: len(client.on(topic)) > sent, 20)
        assert client.on(topic)[-1] == cfg
    finally:
        agent.stop()
        client.publish(topic, b"")  # clear the retained config


def test_ha_discovery_is_off_by_default(
    tmp_path: Path, kit: dict[str, Path], device: str, client: Client
) -> None:
    client.subscribe(config_topic("homeassistant", device))
    agent = AgentProcess(agent_args(device, tmp_path, kit))
    try:
        online(client, device)
        wait_for(lambda: client.on(c.topic(device, c.TELEMETRY)), 30)  # well past connect
        assert not client.on(config_topic("homeassistant", device))
    finally:
        agent.stop()


# ----------------------------------------------------------------------------- the will


def test_the_will_keeps_the_model_after_a_crash_and_after_an_install(
    tmp_path: Path, kit: dict[str, Path], device: str, client: Client
) -> None:
    files = FileServer()
    url = files.add(kit["v2"])
    replay = tmp_path / "replay.npz"
    rng = np.random.default_rng(0)
    np.savez(replay, x=rng.integers(1, 17, (40, 8, 8)).astype(float), y=rng.integers(0, 10, 40))
    data = tmp_path / "data"
    agent = AgentProcess(agent_args(device, data, kit, "--bundle", str(kit["v1"])))
    second: AgentProcess | None = None
    try:
        first = online(client, device)
        agent.kill()  # SIGKILL: no DISCONNECT, the broker publishes the will
        offline = json.loads(wait_for(lambda: _offline(retained(c.topic(device, c.STATUS)))))
        assert offline["boot"] == first["boot"] and offline["model"]["version"] == 1
        assert offline["model"] == first["model"]

        extra = ["--replay", str(replay), "--replay-rate", "20", "--probation-seconds", "0.5",
                 "--download-origins", f"http://127.0.0.1:{files.port}"]  # fmt: skip
        second = AgentProcess(agent_args(device, data, kit, *extra))
        boot = online(client, device, not_boot=first["boot"])["boot"]
        assert online(client, device, not_boot=first["boot"])["model"]["version"] == 1
        cmd = command(
            "deploy", device, name="digits", version=2, url=url, rollout="r-will",
            sha256=hashlib.sha256(kit["v2"].read_bytes()).hexdigest(),
            size=kit["v2"].stat().st_size,
        )  # fmt: skip
        client.publish(c.topic(device, c.CMD), json.dumps(cmd).encode())
        wait_for(lambda: any(e["step"] == "committed" for e in client.on(c.topic(device, c.EVENTS))
                             if e["command"] == cmd["id"]), 60)  # fmt: skip
        # the broker acknowledged the CONNECT that carries the new will (CONNACK, logged)
        wait_for(lambda: _reconnected_after_rearm(second.lines), 30)
        statuses = [s for s in client.on(c.topic(device, c.STATUS)) if s.get("boot") == boot]
        assert all(s["state"] == "online" for s in statuses)  # re-arming never said offline
        assert statuses[-1]["model"]["version"] == 2
        int_res = _infer(client, device, 1006)
        str_res = _infer(client, device, "1006")
        assert int_res["id"] == 1006 and str_res["id"] == "1006"
        assert int_res["version"] == 2
        wait_for(lambda: [t for t in client.on(c.topic(device, c.TELEMETRY))
                          if t["boot"] == boot and t["accuracy"] is not None], 30)  # fmt: skip
        second.kill()
        offline = json.loads(wait_for(lambda: _offline(retained(c.topic(device, c.STATUS)))))
        assert offline["boot"] == boot and offline["model"]["version"] == 2, offline
        _check_captured(client, device, cmd, data, tmp_path)
    finally:
        agent.stop()
        if second is not None:
            second.stop()
        files.close()


def _offline(raw: bytes) -> bytes | None:
    return raw if json.loads(raw)["state"] == "offline" else None


def _reconnected_after_rearm(lines: list[str]) -> bool:
    at = next((i for i, line in enumerate(lines) if "to re-arm the will" in line), None)
    return at is not None and any("MQTT connected" in line for line in lines[at:])


def _infer(client: Client, device: str, rid: Any) -> dict[str, Any]:
    body = {"id": rid, "inputs": raw_digit(), "label": "3"}
    client.publish(c.topic(device, c.INFER_REQ), json.dumps(body).encode())

    def reply() -> dict[str, Any] | None:
        for r in client.on(c.topic(device, c.INFER_RES)):
            if r["id"] == rid and type(r["id"]) is type(rid):
                return r
        return None

    return wait_for(reply, 20)


# ----------------------------------------------------------------------------- schemas


CHECKED_ELSEWHERE = ("samples",)  # tests/edge/contract/test_samples.py::test_ajv_agrees


def _check_captured(
    client: Client, device: str, cmd: dict[str, Any], data: Path, tmp: Path
) -> None:
    """Every message of the run, validated by jsonschema (draft-07 and the default) and by
    ajv 8 in Node (``new Ajv()``, as Node-RED), plus messages that must be refused."""
    import jsonschema

    captured: dict[str, list[Any]] = {
        "status": client.on(c.topic(device, c.STATUS)),
        "telemetry": client.on(c.topic(device, c.TELEMETRY)),
        "event": client.on(c.topic(device, c.EVENTS)),
        "infer.res": client.on(c.topic(device, c.INFER_RES)),
        "cmd": [cmd],
        "infer.req": [
            {"id": 1006, "inputs": raw_digit(), "label": "3"},
            {"id": "1006", "inputs": raw_digit()},
        ],
        "reference": [*shipped_references(), *(json.loads(p.read_text())
                                               for p in data.rglob("reference.json"))],
    }  # fmt: skip
    assert all(captured.values()), {k: len(v) for k, v in captured.items()}
    assert any(t["accuracy"] is not None for t in captured["telemetry"])  # labelled replay
    tel = captured["telemetry"][-1]
    invalid: dict[str, list[Any]] = {
        "status": [{**captured["status"][-1], "state": "sleeping"}],
        "telemetry": [{**tel, "error_rate": 1.5}, {k: v for k, v in tel.items() if k != "drift"}],
        "infer.res": [{**captured["infer.res"][-1], "id": True}],
        "cmd": [{**cmd, "sha256": "xyz"}],
        "event": [{**captured["event"][-1], "kind": "party"}],
        "infer.req": [{"id": "", "inputs": [1]}],
        "reference": [{**captured["reference"][0], "inputs": "x"}],
    }
    for name, messages in captured.items():
        schema = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
        for cls in (jsonschema.Draft7Validator, jsonschema.validators.validator_for({})):
            cls.check_schema(schema)
            v = cls(schema)
            for msg in messages:
                errors = [e.message for e in v.iter_errors(msg)]
                assert not errors, (name, cls.__name__, errors)
            for msg in invalid[name]:
                assert not v.is_valid(msg), (name, cls.__name__)
    cases = tmp / "schema-cases.json"
    cases.write_text(json.dumps({"valid": captured, "invalid": invalid}))
    report = run_ajv(cases)
    # Every shipped schema is exercised: here, or (HTTP bodies the agent only sends with
    # capture on) by its own ajv test, named in CHECKED_ELSEWHERE.
    assert sorted(report["compiled"]) == sorted([*captured, *CHECKED_ELSEWHERE]), report
    assert report["checked"] == sum(map(len, captured.values())) + sum(map(len, invalid.values()))


def shipped_references() -> list[Any]:
    """reference.json of the checked-in bundles (models/*.ekb, built by the trainer)."""
    import tarfile

    out = []
    for bundle in sorted((ROOT / "models").glob("*.ekb")):
        with tarfile.open(bundle) as tar:
            member = tar.extractfile("reference.json")
            if member is not None:
                out.append(json.loads(member.read()))
    return out


def run_ajv(cases: Path) -> dict[str, Any]:
    """``node ajv_check.cjs`` on the cases; node and ajv 8 are CI's (see .ci/run)."""
    node = shutil.which("node")
    need_service(node is not None, "node is not installed")
    need_service(
        (NODE_MODULES / "ajv" / "package.json").exists(),
        f"ajv is not installed in {NODE_MODULES} (npm install --prefix ... ajv@8)",
    )
    assert node is not None
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    proc = subprocess.run(
        [node, str(AJV_CHECK), str(SCHEMAS), str(cases)],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report: dict[str, Any] = json.loads(proc.stdout)
    assert report["ajv"].startswith("8."), report
    return report


def test_ajv_refuses_what_the_schemas_refuse(tmp_path: Path) -> None:
    """The Node check itself can fail: a bad message makes it exit non-zero."""
    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps({"valid": {"infer.req": [{"inputs": [1]}]}}))
    node = shutil.which("node")
    need_service(node is not None, "node is not installed")
    need_service((NODE_MODULES / "ajv").exists(), f"ajv is not installed in {NODE_MODULES}")
    assert node is not None
    env = {**os.environ, "NODE_PATH": str(NODE_MODULES)}
    proc = subprocess.run([node, str(AJV_CHECK), str(SCHEMAS), str(cases)], capture_output=True,
                          text=True, env=env, timeout=60, check=False)  # fmt: skip
    assert proc.returncode == 1 and "infer.req[0] rejected" in proc.stdout
