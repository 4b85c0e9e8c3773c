"""The simulator holds many real MQTT sessions and runs the real install flow."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloud.sim.cli import plan
from cloud.sim.fleet import Fleet, FleetSpec
from edge import contract
from edge.errors import ConfigError
from tests.commands import OTHER_KEY, command, write_hub_key

mqtt = pytest.importorskip("paho.mqtt.client")

REPO = Path(__file__).resolve().parents[3]
MODELS = Path(os.environ.get("EDGEKIT_TEST_MODELS", REPO / "models"))
BUNDLE = MODELS / "digits.ekb"
PUBKEY = MODELS / "dev-signing.pub"
BROKER = "mqtt://127.0.0.1:1883"


def test_plan_spreads_devices_evenly() -> None:
    groups = plan(10, 3, "sim")
    assert [len(g) for g in groups] == [4, 3, 3]
    assert sorted(g for group in groups for g in group) == [f"sim-{i:05d}" for i in range(1, 11)]
    assert plan(1, 4, "x") == [["x-00001"]]
    with pytest.raises(ConfigError):
        plan(0, 2, "sim")
    with pytest.raises(ConfigError):
        plan(5, 0, "sim")


@pytest.fixture()
def bundle_server(tmp_path: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(BUNDLE.parent))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{BUNDLE.name}"
    server.shutdown()


class Collector:
    def __init__(self, prefix: str) -> None:
        self.msgs: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"col-{prefix}")
        self.c.on_message = self._on
        self.c.connect("127.0.0.1", 1883)
        self.c.loop_start()
        self.prefix = f"edgekit/v1/{prefix}"
        self.c.subscribe("edgekit/v1/+/#", qos=1)
        time.sleep(0.3)

    def _on(self, _c: object, _u: object, m: object) -> None:
        if not m.topic.startswith(self.prefix):  # type: ignore[attr-defined]
            return
        if m.topic.endswith("/cmd"):  # type: ignore[attr-defined]
            return
        with self.lock:
            self.msgs.append((m.topic, json.loads(m.payload)))  # type: ignore[attr-defined]

    def of(self, kind: str) -> list[dict]:
        with self.lock:
            return [p for t, p in self.msgs if t.endswith("/" + kind)]

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.skipif(not BUNDLE.exists(), reason="models/digits.ekb not built")
def test_fleet_connects_installs_and_reports(bundle_server: str, tmp_path: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:6]}-"
    ids = [f"{prefix}{i}" for i in range(40)]
    col = Collector(prefix)
    spec = FleetSpec(
        broker=BROKER,
        device_ids=ids,
        trusted_key=str(PUBKEY),
        telemetry_interval=1.0,
        probation_s=0.2,
        command_key=str(write_hub_key(tmp_path)),
    )
    fleet = Fleet(spec, Path(REPO / ".pytest_cache" / f"sim-{prefix}"))
    t = threading.Thread(target=fleet.run, kwargs={"duration": 30}, daemon=True)
    t.start()
    try:
        deadline = time.monotonic() + 15
        while len({s["device"] for s in col.of("status")}) < len(ids):
            assert time.monotonic() < deadline, "not every simulated device came online"
            time.sleep(0.2)
        sha = hashlib.sha256(BUNDLE.read_bytes()).hexdigest()
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"cmd-{prefix}")
        pub.connect("127.0.0.1", 1883)
        pub.loop_start()
        from edge.bundle import read_manifest

        version = read_manifest(BUNDLE).version
        size = BUNDLE.stat().st_size
        fields: dict[str, Any] = {"name": "digits", "version": version, "url": bundle_server,
                                  "size": size}  # fmt: skip
        for i, dev in enumerate(ids[:10]):
            cmd = command("deploy", dev, id=f"c{i}", sha256=sha, **fields)
            pub.publish(
                contract.topic(dev, contract.CMD), json.dumps(cmd).encode(), qos=1
            ).wait_for_publish(5)
        bad = command("deploy", ids[10], id="bad", sha256="0" * 64, **fields)
        pub.publish(
            contract.topic(ids[10], contract.CMD), json.dumps(bad).encode(), qos=1
        ).wait_for_publish(5)
        pub.publish(contract.topic(ids[11], contract.CMD), b"not json", qos=1)
        forged = command("deploy", ids[12], id="forged", key=OTHER_KEY, sha256=sha, **fields)
        pub.publish(contract.topic(ids[12], contract.CMD), json.dumps(forged).encode(), qos=1)
        deadline = time.monotonic() + 20
        while True:
            committed = {e["device"] for e in col.of("events") if e.get("step") == "committed"}
            failed = {e["device"] for e in col.of("events") if e.get("step") == "failed"}
            answered = {e["device"] for e in col.of("events")}
            if committed >= set(ids[:10]) and ids[10] in failed and ids[12] in answered:
                break
            assert time.monotonic() < deadline, f"committed {len(committed)}/10, failed {failed}"
            time.sleep(0.2)
        steps = [e["step"] for e in col.of("events") if e["device"] == ids[0]]
        assert steps == [
            "downloading",
            "verifying",
            "self_test",
            "activating",
            "probation",
            "committed",
        ]
        reason = next(
            e for e in col.of("events") if e["device"] == ids[10] and e["step"] == "failed"
        )
        assert "sha256" in json.dumps(reason)
        refused = next(e for e in col.of("events") if e["device"] == ids[12])
        assert refused["command"] == "forged" and refused["detail"]["reason"] == "unknown_key"
        assert not [e for e in col.of("events") if e["device"] == ids[12] and e.get("step")]
        deadline = time.monotonic() + 10
        while not any(t.get("device") == ids[0] and t.get("model") for t in col.of("telemetry")):
            assert time.monotonic() < deadline, "no telemetry with a model"
            time.sleep(0.2)
        tel = next(t for t in col.of("telemetry") if t["device"] == ids[0] and t.get("model"))
        assert tel["model"]["version"] == version and tel["inferences"] > 0
        assert tel["schema"] == contract.SCHEMA_TELEMETRY
        pub.loop_stop()
        pub.disconnect()
    finally:
        fleet.stop()
        t.join(20)

        def offline() -> set[str]:
            return {s["device"] for s in col.of("status") if s["state"] == "offline"}

        # the broker acknowledged every goodbye before the fleet disconnected; delivering
        # 40 of them on to this subscriber may still take a moment on a loaded machine
        deadline = time.monotonic() + 15
        while not offline() >= set(ids) and time.monotonic() < deadline:
            time.sleep(0.1)
        col.close()
    assert offline() >= set(ids), "a stopped fleet says goodbye with a retained offline status"
