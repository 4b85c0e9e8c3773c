"""The hub's side of capability-aware rollouts through the database and the API: devices'
reported capabilities against the registered bundle's variants, the agent's refusal event,
and the status the API shows."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from cloud.hub.rollout.core import RolloutSpec
from cloud.hub.rollout.core.machine import new_rollout
from cloud.hub.rollout.store import observe
from edge.contract import Event, ModelRef, Status, encode_json, topic
from tests.bundles import make_bundle
from tests.cloud.hub.helpers import feed
from tests.cloud.hub.http.test_api import upload

ORT_ONLY = "no variant of digits v2 runs on this device: onnxruntime-fp32 needs onnxruntime"


def status(device: str, runtimes: dict[str, Any] | None, seq: int = 1) -> tuple[str, bytes]:
    """A status as an agent sends it; ``runtimes`` None: no capabilities reported."""
    caps: dict[str, Any] = {}
    if runtimes is not None:
        caps = {"cpu": {"arch": "x86_64"}, "memory_available_mb": 2000.0, "runtimes": runtimes}
    model = ModelRef("digits", 1, "litert", "fp32")
    s = Status(device, time.time(), seq, "online", "0.1.0", model, "boot1", True, caps)
    return topic(device, "status"), encode_json(s.to_dict())


LITERT_ONLY = {
    "litert": {"available": True, "version": "2.3.0", "package": "ai-edge-litert"},
    "onnxruntime": {"available": False, "reason": "not installed (pip install onnxruntime)"},
}
WITH_ORT = {**LITERT_ONLY, "onnxruntime": {"available": True, "version": "1.32.0"}}


@pytest.fixture
def bundles(keys: tuple[Path, Path], tmp_path: Path) -> dict[str, Path]:
    """v1 and v2 (ONNX-only, as the reference tests build them), and v3 whose variant was
    evaluated with an ONNX Runtime newer than any device has."""
    out = {}
    for v in (1, 2):
        out[f"v{v}"] = make_bundle(tmp_path / f"d{v}.ekb", keys[0], version=v, seed=v)
    newer = {"requires": {"runtime_version": "99.1.0", "runtime_package": "onnxruntime"}}
    out["v3"] = make_bundle(tmp_path / "d3.ekb", keys[0], version=3, metrics=newer)
    return out


def test_observe_judges_each_device_by_its_reported_capabilities(
    app: Any, client: Any, tokens: Any, bundles: dict[str, Path]
) -> None:
    for b in bundles.values():
        assert upload(client, tokens["operator"], b).status_code == 201
    feed(app, status("lite", LITERT_ONLY), status("both", WITH_ORT), status("silent", None))
    spec = RolloutSpec.parse({"model": "digits", "version": 2, "target": {"all": True}})
    with app.extensions["edgekit_hub"].db.session() as s:
        obs = observe(s, new_rollout("r-x", spec, time.time()))
        assert obs["lite"].incompatible is not None
        assert obs["lite"].incompatible.startswith(ORT_ONLY)
        assert obs["both"].incompatible is None
        assert obs["silent"].incompatible is None  # never reported: the agent will decide
        newer = RolloutSpec.parse({"model": "digits", "version": 3, "target": {"all": True}})
        obs = observe(s, new_rollout("r-y", newer, time.time()))
        assert obs["both"].incompatible == (
            "no variant of digits v3 runs on this device: onnxruntime-fp32 needs "
            "onnxruntime >= 99.1.0, the device has 1.32.0"
        )


def test_a_rollout_over_the_api_marks_incompatible_devices_and_completes(
    app: Any, client: Any, tokens: Any, bundles: dict[str, Path]
) -> None:
    h = tokens["operator"]
    for b in bundles.values():
        upload(client, h, b)
    feed(app, status("lite", LITERT_ONLY), status("both", WITH_ORT), status("silent", None))
    sent: list[tuple[str, Any]] = []
    hub = app.extensions["edgekit_hub"]
    hub.service.publisher = lambda device, cmd: sent.append((device, cmd))
    body = {"model": "digits", "version": 2, "target": {"all": True}, "waves": [100],
            "soak_seconds": 0, "error_threshold": 0}  # fmt: skip
    resp = client.post("/api/v1/rollouts", json=body, headers=h)
    assert resp.status_code == 201, resp.get_json()
    rid = resp.get_json()["id"]
    assert sorted(d for d, _c in sent) == ["both", "silent"]  # never the LiteRT-only one
    r = client.get(f"/api/v1/rollouts/{rid}", headers=h).get_json()
    deps = {d["device"]: d for d in r["deployments"]}
    assert deps["lite"]["status"] == "incompatible"
    assert deps["lite"]["reason"].startswith(ORT_ONLY)
    assert r["waves"][0]["incompatible"] == 1 and r["waves"][0]["failed"] == 0
    # "both" commits; "silent" had no capabilities, got the deploy, and its agent refused it
    cmds = {d: c for d, c in sent}
    refusal = "no variant of digits v2 runs on this device: onnxruntime-fp32 needs onnxruntime"
    ev_ok = Event("both", time.time(), 5, "deploy", "committed", "committed", rid,
                  cmds["both"].id, 2)  # fmt: skip
    detail = {"failed_step": "verifying", "reason": refusal, "code": "incompatible"}
    ev_no = Event("silent", time.time(), 5, "deploy", "refused", "failed", rid,
                  cmds["silent"].id, 2, detail)  # fmt: skip
    both = Status("both", time.time(), 6, "online", "0.1.0", ModelRef("digits", 2), "boot1",
                  True, {"runtimes": WITH_ORT})  # fmt: skip
    feed(
        app,
        (topic("both", "events"), encode_json(ev_ok.to_dict())),
        (topic("silent", "events"), encode_json(ev_no.to_dict())),
        (topic("both", "status"), encode_json(both.to_dict())),
    )
    hub.service.tick()
    hub.service.tick()
    r = client.get(f"/api/v1/rollouts/{rid}", headers=h).get_json()
    deps = {d["device"]: d for d in r["deployments"]}
    assert deps["both"]["status"] == "committed"
    assert deps["silent"]["status"] == "incompatible"
    assert deps["silent"]["reason"] == f"device refused: {refusal}"  # no "verifying failed:"
    assert r["state"] == "completed", r["audit"][-1]


def test_a_rollout_nobody_can_run_is_aborted(
    app: Any, client: Any, tokens: Any, bundles: dict[str, Path]
) -> None:
    h = tokens["operator"]
    for b in bundles.values():
        upload(client, h, b)
    feed(app, status("a", WITH_ORT), status("b", WITH_ORT))
    app.extensions["edgekit_hub"].service.publisher = lambda device, cmd: None
    body = {"model": "digits", "version": 3, "target": {"all": True}, "waves": [100],
            "soak_seconds": 0}  # fmt: skip
    rid = client.post("/api/v1/rollouts", json=body, headers=h).get_json()["id"]
    app.extensions["edgekit_hub"].service.tick()
    r = client.get(f"/api/v1/rollouts/{rid}", headers=h).get_json()
    assert r["state"] == "aborted"
    assert r["audit"][-1]["reason"] == (
        "no target device can run digits v3: 2 incompatible, none committed"
    )
    assert {d["status"] for d in r["deployments"]} == {"incompatible"}


def test_the_openapi_document_names_the_status(client: Any) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    status = doc["components"]["schemas"]["RolloutDeployment"]["properties"]["status"]
    assert "incompatible" in status["enum"] and "failed" in status["enum"]
