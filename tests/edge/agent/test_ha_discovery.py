"""edge/agent/ha_discovery.py: the payload follows Home Assistant's discovery rules, its
templates render on the telemetry and status a real agent publishes (nulls included), the
setting parses, and the agent publishes it only when asked (in-memory broker)."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge import contract as c
from edge.agent import Agent, config
from edge.agent.ha_discovery import (
    DEFAULT_PREFIX,
    components,
    config_topic,
    device_config,
    node_id,
    parse_setting,
)
from edge.errors import ConfigError
from edge.messaging import MemoryBroker, MemoryTransport
from tests.waiting import wait_for

jinja2 = pytest.importorskip("jinja2")
from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: E402

MODELS = Path(__file__).resolve().parents[3] / "models"
HA_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
PLATFORMS = {"sensor", "binary_sensor"}
# Home Assistant's duration units and the device classes used here
DURATION_UNITS = {"d", "h", "min", "s", "ms", "μs"}


def render(template: str, payload: bytes) -> str:
    """Render like Home Assistant does: ``value_json`` is the decoded payload (absent when
    the payload is not JSON), in a sandbox; the result is stripped."""
    env = ImmutableSandboxedEnvironment()
    variables: dict[str, Any] = {"value": payload.decode()}
    with contextlib.suppress(ValueError):
        variables["value_json"] = json.loads(payload)
    return env.from_string(template).render(**variables).strip()


@pytest.fixture(scope="module")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, list[bytes]]]:
    """Telemetry and status of a real agent (reference digits bundle, in memory): before
    any inference, with unlabelled and labelled inferences and an error, and with no model."""
    if not (MODELS / "digits.ekb").exists():
        pytest.skip("reference bundles not built (scripts/build_reference_models)")
    broker = MemoryBroker()
    out: dict[str, list[bytes]] = {"telemetry": [], "status": [], "no_model_telemetry": []}
    root = tmp_path_factory.mktemp("ha")
    base = {"device_id": "ha-1", "telemetry_interval": "3600", "selftest_time_budget": "0.3"}
    cfg = config.load(
        {**base, "data_dir": str(root / "a"), "bundle": str(MODELS / "digits.ekb"),
         "trusted_key": str(MODELS / "dev-signing.pub")}, environ={},
    )  # fmt: skip
    agent = Agent(cfg, MemoryTransport(broker, "agent"))
    agent.start()
    try:
        agent.publish_telemetry()  # nothing served yet: nulls
        rng = np.random.default_rng(0)
        for i in range(30):
            agent.predict(rng.integers(0, 17, (8, 8)).astype(float), str(i % 10) if i > 9 else None)
        agent.publish_telemetry()
        wait_for(lambda: not agent.outbox.stats()["queued"], 10)
    finally:
        agent.stop(graceful=False)
    for m in broker.messages("edgekit/v1/ha-1/#"):
        _dev, kind = c.parse_topic(m.topic)
        if kind in ("telemetry", "status"):
            out[kind].append(m.payload)
    bare = Agent(
        config.load({**base, "data_dir": str(root / "b")}, environ={}),
        MemoryTransport(broker, "bare"),
    )
    bare.start()
    try:
        bare.publish_telemetry()
        wait_for(lambda: not bare.outbox.stats()["queued"], 10)
    finally:
        bare.stop(graceful=False)
    out["no_model_telemetry"] = [m.payload for m in broker.messages(c.topic("ha-1", c.TELEMETRY))]
    out["no_model_telemetry"] = out["no_model_telemetry"][len(out["telemetry"]) :]
    assert len(out["telemetry"]) == 2 and out["no_model_telemetry"] and out["status"]
    yield out


# ----------------------------------------------------------------------------- payload rules


@pytest.mark.parametrize("device", ["cam-1", "cam.1", "Cam_1.lab-2"])
def test_payload_follows_the_discovery_rules(device: str) -> None:
    cfg = device_config(device)
    topic = config_topic(DEFAULT_PREFIX, device)
    prefix, kind, node, leaf = topic.split("/")
    assert (prefix, kind, leaf) == ("homeassistant", "device", "config")
    assert HA_ID.match(node) and node == node_id(device)
    assert cfg["dev"]["ids"] and all(HA_ID.match(i) for i in cfg["dev"]["ids"])
    assert cfg["dev"]["name"] == device and cfg["o"]["name"] == "edgekit" and cfg["o"]["sw"]
    [avail] = cfg["availability"]
    assert avail["topic"] == c.topic(device, c.STATUS)
    assert (avail["payload_available"], avail["payload_not_available"]) == ("online", "offline")
    own = {c.topic(device, c.TELEMETRY), c.topic(device, c.STATUS)}
    ids = [comp["unique_id"] for comp in cfg["cmps"].values()]
    assert len(set(ids)) == len(ids) == len(cfg["cmps"])
    for key, comp in cfg["cmps"].items():
        assert HA_ID.match(key) and HA_ID.match(comp["unique_id"]), key
        assert comp["p"] in PLATFORMS and comp["state_topic"] in own, key
        assert comp["name"] and comp["value_template"].strip(), key
        if comp.get("device_class") == "duration":
            assert comp["unit_of_measurement"] in DURATION_UNITS
        if comp.get("state_class") == "measurement":
            assert comp["p"] == "sensor"
    assert {"latency_p95", "throughput", "error_rate", "drift_psi", "accuracy", "model"} <= set(
        cfg["cmps"]
    )
    assert cfg["cmps"]["model"]["state_topic"] == c.topic(device, c.STATUS)
    json.dumps(cfg, allow_nan=False)  # plain JSON


def test_node_ids_of_distinct_devices_never_collide() -> None:
    devices = ["cam.1", "cam_1", "cam-1", "a.b.c", "a_b.c"]
    assert len({node_id(d) for d in devices}) == len(devices)
    assert node_id("cam-1") == "cam-1"  # ids that are valid stay as they are
    every = [comp["unique_id"] for d in devices for comp in components(d).values()]
    assert len(set(every)) == len(every)


# ----------------------------------------------------------------------------- templates


def values(payload: bytes, device: str = "ha-1") -> dict[str, str]:
    return {k: render(v["value_template"], payload) for k, v in components(device).items()}


def test_templates_render_on_real_telemetry(captured: dict[str, list[bytes]]) -> None:
    idle, busy = captured["telemetry"]
    before = values(idle)
    assert before["latency_p95"] == "None" and before["accuracy"] == "None"  # unknown in HA
    assert before["throughput"] == "0.0" or float(before["throughput"]) == 0
    assert before["drift_alert"] in ("ON", "OFF")
    after = values(busy)
    tel = json.loads(busy)
    p95 = tel["latency_ms"]["p95"]  # the template rounds to 6 places: 0.048 ms has 5 digits
    assert float(after["latency_p95"]) == pytest.approx(p95, rel=1e-5, abs=1e-6)
    assert float(after["throughput"]) == pytest.approx(tel["throughput_per_s"], rel=1e-5)
    assert float(after["error_rate"]) == pytest.approx(100 * tel["error_rate"], abs=1e-4)
    assert tel["accuracy"] is not None
    assert float(after["accuracy"]) == pytest.approx(100 * tel["accuracy"]["value"], abs=1e-4)
    psis = [tel["drift"][k] for k in ("input_psi", "output_psi", "confidence_psi")]
    numbers = [p for p in psis if isinstance(p, (int, float))]
    assert (
        after["drift_psi"] == "None"
        if not numbers
        else float(after["drift_psi"]) == (pytest.approx(max(numbers), rel=1e-5))
    )
    for payload in captured["no_model_telemetry"]:
        bare = values(payload)
        assert bare["latency_p95"] == "None" and bare["accuracy"] == "None"


def test_model_version_and_availability_from_the_status(
    captured: dict[str, list[bytes]],
) -> None:
    cfg = device_config("ha-1")
    online = next(p for p in captured["status"] if json.loads(p)["state"] == "online")
    model = json.loads(online)["model"]
    assert render(cfg["cmps"]["model"]["value_template"], online) == f"digits v{model['version']}"
    attrs = json.loads(render(cfg["cmps"]["model"]["json_attributes_template"], online))
    assert attrs["version"] == model["version"]
    avail = cfg["availability"][0]["value_template"]
    assert render(avail, online) == "online"
    states = {render(avail, p) for p in captured["status"]}
    assert states == {"online", "offline"}  # the will is among the captured statuses
    no_model = c.encode_json(c.Status("ha-1", 1.0, 0, "online").to_dict())
    assert render(cfg["cmps"]["model"]["value_template"], no_model) == "None"


@pytest.mark.parametrize(
    "payload",
    [b"", b"not json", b"[]", b"null", b'{"latency_ms": null, "drift": 3, "accuracy": "x"}',
     b'{"latency_ms": {"p95": "fast"}, "error_rate": null, "model": []}'],
)  # fmt: skip
def test_templates_never_fail_on_odd_payloads(payload: bytes) -> None:
    cfg = device_config("ha-1")
    for key, comp in cfg["cmps"].items():
        out = render(comp["value_template"], payload)
        assert out in ("None", "OFF", "ON"), (key, out)
    assert render(cfg["availability"][0]["value_template"], payload) in ("offline", "")


# ----------------------------------------------------------------------------- setting


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, "homeassistant"), (False, None), ("true", "homeassistant"), ("off", None),
     ("ha", "ha"), ({"prefix": "home/ha"}, "home/ha"), ({}, "homeassistant"),
     ({"prefix": "x", "enabled": False}, None)],
)  # fmt: skip
def test_setting(value: Any, expected: str | None) -> None:
    assert parse_setting(value, "ha_discovery") == expected


@pytest.mark.parametrize(
    "value",
    ["home/#", "a+b", "/ha", "ha/", "two words", {"prefix": ""}, {"prefx": "ha"}, 3, [],
     {"enabled": "yes"}],
)  # fmt: skip
def test_bad_settings_are_refused_naming_the_key(value: Any) -> None:
    with pytest.raises(ConfigError, match="ha_discovery"):
        parse_setting(value, "ha_discovery")


def test_config_file_flag_and_environment(tmp_path: Path) -> None:
    from edge.cli.main import build_parser

    base = {"device_id": "d", "data_dir": str(tmp_path)}
    assert config.load(base, environ={}).ha_discovery is None  # off by default
    toml = tmp_path / "agent.toml"
    toml.write_text(
        '[agent]\ndevice_id = "d"\ndata_dir = "x"\n[agent.ha_discovery]\nprefix = "h"\n'
    )
    assert config.load(config_file=toml, environ={}).ha_discovery == "h"
    toml.write_text('device_id = "d"\ndata_dir = "x"\nha_discovery = true\n')
    assert config.load(config_file=toml, environ={}).ha_discovery == "homeassistant"
    env = {"EDGEKIT_HA_DISCOVERY": "1"}
    assert config.load(base, environ=env).ha_discovery == "homeassistant"
    parser = build_parser()
    for argv, expected in ((["--ha-discovery"], "homeassistant"), (["--ha-discovery", "h2"], "h2"),
                           ([], None)):  # fmt: skip
        args = parser.parse_args(["agent", "run", "--device-id", "d", "--data-dir", "x", *argv])
        given = {"device_id": "d", "data_dir": "x", "ha_discovery": args.ha_discovery}
        assert config.load(given, environ={}).ha_discovery == expected
    with pytest.raises(ConfigError, match="ha_discovery"):
        config.load({**base, "ha_discovery": "a/#"}, environ={})


# ----------------------------------------------------------------------------- the agent


def _agent(tmp_path: Path, broker: MemoryBroker, **settings: Any) -> Agent:
    cfg = config.load({"device_id": "ha_9", "data_dir": str(tmp_path), "telemetry_interval":
                       "3600", **settings}, environ={})  # fmt: skip
    agent = Agent(cfg, MemoryTransport(broker, "agent"))
    agent.start()
    return agent


def test_agent_publishes_retained_and_again_when_ha_comes_online(tmp_path: Path) -> None:
    broker = MemoryBroker()
    ha = MemoryTransport(broker, "ha")
    ha.connect()
    agent = _agent(tmp_path, broker, ha_discovery="ha-test")
    try:
        topic = config_topic("ha-test", "ha_9")
        assert topic == f"ha-test/device/{node_id('ha_9')}/config"
        raw = wait_for(lambda: broker.retained(topic))
        assert json.loads(raw) == device_config("ha_9")
        sent = len(broker.messages(topic))
        ha.publish("ha-test/status", b"offline", qos=1)
        ha.publish("ha-test/status", b"garbage", qos=1)
        assert len(broker.messages(topic)) == sent  # only "online" asks again
        ha.publish("ha-test/status", b"online", qos=1)
        wait_for(lambda: len(broker.messages(topic)) == sent + 1)
        assert broker.messages(topic)[-1].retain
    finally:
        agent.stop(graceful=False)


def test_off_by_default(tmp_path: Path) -> None:
    broker = MemoryBroker()
    agent = _agent(tmp_path, broker)
    try:
        wait_for(lambda: broker.retained(c.topic("ha_9", c.STATUS)))
        assert agent.ha is None
        assert not [m for m in broker.messages("#") if m.topic.startswith("homeassistant")]
    finally:
        agent.stop(graceful=False)
