"""The REST API through Flask's test client on SQLite: happy paths and bad inputs."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest

from cloud.hub.config import HubConfig
from cloud.keys import generate_keypair
from tests.cloud.hub import helpers
from tests.cloud.hub.helpers import feed


def upload(client: Any, headers: dict[str, str], path: Path) -> Any:
    data = {"bundle": (io.BytesIO(path.read_bytes()), path.name)}
    return client.post("/api/v1/models", headers=headers, data=data)


def err(resp: Any) -> str:
    assert resp.is_json, resp.data[:200]
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return str(body["error"]["code"])


# --------------------------------------------------------------------------- auth


def test_auth_is_required_and_roles_are_enforced(
    client: Any, tokens: Any, make_bundle: Any
) -> None:
    assert client.get("/api/v1/devices").status_code == 401
    bad = {"Authorization": "Bearer nope"}
    resp = client.get("/api/v1/devices", headers=bad)
    assert resp.status_code == 401 and err(resp) == "unauthorized"
    resp = upload(client, tokens["viewer"], make_bundle(1))
    assert resp.status_code == 403 and err(resp) == "forbidden"
    assert client.get("/api/v1/devices", headers=tokens["viewer"]).status_code == 200


def test_session_login_needs_csrf_and_then_works(app: Any, client: Any) -> None:
    from cloud.hub.http.auth import create_user

    with app.extensions["edgekit_hub"].db.session() as s:
        create_user(s, "ann", "correct horse", "operator")
    resp = client.post("/api/v1/session", json={"username": "ann", "password": "correct horse"})
    assert resp.status_code == 400 and err(resp) == "csrf"
    token = client.get("/api/v1/session").get_json()["csrf_token"]
    h = {"X-CSRFToken": token}
    resp = client.post("/api/v1/session", json={"username": "ann", "password": "wrong"}, headers=h)
    assert resp.status_code == 401 and err(resp) == "bad_login"
    login = {"username": "ann", "password": "correct horse"}
    resp = client.post("/api/v1/session", json=login, headers=h)
    assert resp.status_code == 200 and resp.get_json()["user"]["role"] == "operator"
    h = {"X-CSRFToken": resp.get_json()["csrf_token"]}  # login rotates the CSRF token
    assert client.get("/api/v1/devices").status_code == 200  # cookie session
    resp = client.put("/api/v1/models/digits/aliases/stable", json={"version": 1})
    assert resp.status_code == 400 and err(resp) == "csrf"  # cookie writes need the token
    assert client.delete("/api/v1/session", headers=h).status_code == 204
    assert client.get("/api/v1/devices").status_code == 401


# --------------------------------------------------------------------------- models


def test_upload_list_show_download(client: Any, tokens: Any, make_bundle: Any) -> None:
    path = make_bundle(1)
    resp = upload(client, tokens["operator"], path)
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["name"] == "digits" and resp.get_json()["version"] == 1
    resp = upload(client, tokens["operator"], path)
    assert resp.status_code == 409 and err(resp) == "exists"
    models = client.get("/api/v1/models", headers=tokens["viewer"]).get_json()
    assert [(m["name"], m["version"]) for m in models] == [("digits", 1)]
    assert models[0]["variants"] == ["onnxruntime-fp32"]
    detail = client.get("/api/v1/models/digits/1", headers=tokens["viewer"]).get_json()
    assert detail["card"].startswith("# digits v1")
    assert detail["manifest"]["name"] == "digits" and detail["variant_table"]
    data = client.get("/api/v1/models/digits/1/bundle", headers=tokens["viewer"]).data
    assert data == path.read_bytes()
    part = client.get(
        "/api/v1/models/digits/1/bundle", headers={**tokens["viewer"], "Range": "bytes=10-19"}
    )
    assert part.status_code == 206 and part.data == path.read_bytes()[10:20]


@pytest.mark.parametrize("case", ["garbage", "wrong_key", "empty", "missing"])
def test_bad_uploads_are_refused(
    client: Any, tokens: Any, make_bundle: Any, tmp_path: Path, case: str
) -> None:
    h = tokens["operator"]
    if case == "garbage":
        resp = client.post("/api/v1/models", headers=h,
                           data={"bundle": (io.BytesIO(b"not a tar" * 100), "x.ekb")})  # fmt: skip
        assert resp.status_code == 422 and err(resp) == "bad_bundle"
    elif case == "wrong_key":
        other = generate_keypair(tmp_path / "other")[0]
        resp = upload(client, h, make_bundle(5, private_key=other))
        assert (
            resp.status_code == 422 and "signature" in resp.get_json()["error"]["message"].lower()
        )
    elif case == "empty":
        resp = client.post("/api/v1/models", headers=h, data={"bundle": (io.BytesIO(b""), "x")})
        assert resp.status_code == 400 and err(resp) == "empty"
    else:
        resp = client.post("/api/v1/models", headers=h, data={"other": "x"})
        assert resp.status_code == 400 and err(resp) == "missing_field"
    assert client.get("/api/v1/models", headers=h).get_json() == []


def test_upload_without_trusted_key_is_refused(tmp_path: Path, make_bundle: Any) -> None:
    from cloud.hub.app import create_app
    from cloud.hub.http.auth import create_api_token

    app = create_app(HubConfig(data_dir=tmp_path / "h", background=False))
    with app.extensions["edgekit_hub"].db.session() as s:
        h = {"Authorization": f"Bearer {create_api_token(s, 'admin')}"}
    resp = upload(app.test_client(), h, make_bundle(1))
    assert resp.status_code == 409 and err(resp) == "no_trusted_key"


def test_delete_is_refused_while_a_device_runs_the_version(
    app: Any, client: Any, tokens: Any, make_bundle: Any
) -> None:
    upload(client, tokens["operator"], make_bundle(1))
    upload(client, tokens["operator"], make_bundle(2))
    feed(app, helpers.status("cam-1", version=1))
    resp = client.delete("/api/v1/models/digits/1", headers=tokens["operator"])
    assert resp.status_code == 403
    resp = client.delete("/api/v1/models/digits/1", headers=tokens["admin"])
    assert (
        resp.status_code == 409
        and err(resp) == "in_use"
        and "cam-1" in resp.get_json()["error"]["message"]
    )
    client.put(
        "/api/v1/models/digits/aliases/stable", json={"version": 2}, headers=tokens["operator"]
    )
    resp = client.delete("/api/v1/models/digits/2", headers=tokens["admin"])
    assert resp.status_code == 409 and "alias" in resp.get_json()["error"]["message"]
    feed(app, helpers.status("cam-1", version=2, seq=2))
    assert client.delete("/api/v1/models/digits/1", headers=tokens["admin"]).status_code == 204
    assert client.get("/api/v1/models/digits/1", headers=tokens["viewer"]).status_code == 404


def test_aliases(client: Any, tokens: Any, make_bundle: Any) -> None:
    h = tokens["operator"]
    upload(client, h, make_bundle(1))
    resp = client.put("/api/v1/models/digits/aliases/stable", json={"version": 1}, headers=h)
    assert resp.status_code == 200
    assert client.get("/api/v1/models/digits/aliases", headers=h).get_json() == {"stable": 1}
    assert client.get("/api/v1/models/digits/stable", headers=h).get_json()["version"] == 1
    for body, code in (({"version": 9}, 404), ({"version": "1"}, 400), ([], 400)):
        resp = client.put("/api/v1/models/digits/aliases/stable", json=body, headers=h)
        assert resp.status_code == code, body
    resp = client.put("/api/v1/models/digits/aliases/latest", json={"version": 1}, headers=h)
    assert resp.status_code == 400 and err(resp) == "bad_alias"


# --------------------------------------------------------------------------- devices


def test_enrollment_gives_a_device_token_that_downloads_bundles(
    app: Any, client: Any, tokens: Any, make_bundle: Any
) -> None:
    from cloud.hub.http.auth import create_enrollment_token

    upload(client, tokens["operator"], make_bundle(1))
    with app.extensions["edgekit_hub"].db.session() as s:
        enroll = create_enrollment_token(s, ["lab"])
    resp = client.post("/api/v1/enroll", json={"token": enroll, "device": "cam-7"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["device"] == "cam-7" and body["tags"] == ["lab"] and body["token"]
    again = client.post("/api/v1/enroll", json={"token": enroll, "device": "cam-8"})
    assert again.status_code == 401 and err(again) == "bad_token"
    dev = {"Authorization": f"Bearer {body['token']}"}
    resp = client.get("/api/v1/models/digits/1/bundle", headers=dev)
    assert resp.status_code == 403 and err(resp) == "forbidden"  # not deployed to it yet
    rollout = {"model": "digits", "version": 1, "target": {"devices": ["cam-7"]}}
    resp = client.post("/api/v1/rollouts", json=rollout, headers=tokens["operator"])
    assert resp.status_code == 201
    assert client.get("/api/v1/models/digits/1/bundle", headers=dev).status_code == 200
    assert client.get("/api/v1/devices", headers=dev).status_code == 403
    device = client.get("/api/v1/devices/cam-7", headers=tokens["viewer"]).get_json()
    assert device["enrolled"] is True and device["model"] is None and device["online"] is False


@pytest.mark.parametrize(
    "body", [{}, {"token": "x"}, {"token": "x", "device": "a/b"}, {"token": 5, "device": "ok"}, []]
)
def test_bad_enrollment_requests(client: Any, body: Any) -> None:
    resp = client.post("/api/v1/enroll", json=body)
    assert 400 <= resp.status_code < 500 and err(resp)


def test_devices_show_what_they_report(app: Any, client: Any, tokens: Any) -> None:
    bridge = feed(
        app,
        helpers.status("cam-1", version=1),
        helpers.status("cam-2", version=None),
        helpers.telemetry("cam-1", seq=2),
        helpers.telemetry("cam-1", seq=2),  # duplicate seq: stored once
        ("edgekit/v1/cam-3/status", b"{not json"),
        (helpers.status("cam-4", version=1)[0], b'{"schema":"edgekit.status/1"}'),
        ("edgekit/v1/cam-5/telemetry", helpers.telemetry("cam-6", seq=1)[1]),  # device mismatch
    )
    assert bridge.counters["rejected"] == 3 and bridge.counters["duplicate"] == 1
    devices = client.get("/api/v1/devices", headers=tokens["viewer"]).get_json()
    by_id = {d["id"]: d for d in devices}
    assert set(by_id) == {"cam-1", "cam-2"}
    assert by_id["cam-1"]["model"]["version"] == 1 and by_id["cam-1"]["online"] is True
    assert by_id["cam-1"]["enrolled"] is False  # reported over MQTT without enrolling
    assert by_id["cam-1"]["kpis"]["p95_latency_ms"] == 2.0
    assert by_id["cam-2"]["model"] is None
    feed(app, helpers.status("cam-1", version=1, seq=3, state="offline"))
    one = client.get("/api/v1/devices/cam-1", headers=tokens["viewer"]).get_json()
    assert one["online"] is False and one["model"]["version"] == 1  # the will keeps the model
    assert one["capabilities"] == {"cores": 2}
    assert client.get("/api/v1/devices?tag=lab", headers=tokens["viewer"]).get_json() == []


def test_patch_tags(app: Any, client: Any, tokens: Any) -> None:
    feed(app, helpers.status("cam-1"))
    h = tokens["operator"]
    resp = client.patch("/api/v1/devices/cam-1", json={"tags": ["lab", "eu"]}, headers=h)
    assert resp.status_code == 200 and resp.get_json()["tags"] == ["lab", "eu"]
    for body in ({"tags": "lab"}, {"tags": ["a b"]}, {"online": True}, {"tags": [1]}):
        resp = client.patch("/api/v1/devices/cam-1", json=body, headers=h)
        assert resp.status_code == 400 and err(resp) == "invalid", body
    assert client.patch("/api/v1/devices/nope", json={"tags": []}, headers=h).status_code == 404
    resp = client.patch("/api/v1/devices/cam-1", data="tags", headers=h)
    assert resp.status_code == 400 and err(resp) == "bad_json"


def test_telemetry_queries(app: Any, client: Any, tokens: Any, make_bundle: Any) -> None:
    upload(client, tokens["operator"], make_bundle(1))
    now = time.time()
    feed(app, helpers.status("cam-1"), helpers.status("cam-2"),
         *[helpers.telemetry("cam-1", seq=i, ts=now - 30 + i) for i in range(3)],
         helpers.telemetry("cam-2", seq=1, ts=now - 20, latency_ms={"p95": 9.0}))  # fmt: skip
    h = tokens["viewer"]
    raw = client.get("/api/v1/devices/cam-1/telemetry", headers=h).get_json()
    assert [p["seq"] for p in raw["points"]] == [0, 1, 2]
    assert raw["points"][0]["latency_p95"] == 2.0 and raw["points"][0]["errors"] == 1
    minute = client.get("/api/v1/devices/cam-1/telemetry?resolution=minute", headers=h).get_json()
    assert sum(p["inferences"] for p in minute["points"]) == 150
    assert sum(p["samples"] for p in minute["points"]) == 3
    model = client.get("/api/v1/models/digits/1/telemetry", headers=h).get_json()
    assert model["summary"]["inferences"] == 200
    assert max(p["latency_p95"] for p in model["points"]) == 9.0
    for query in ("since=abc", "resolution=hour", "since=10&until=5", "limit=0", "until=nan"):
        resp = client.get(f"/api/v1/devices/cam-1/telemetry?{query}", headers=h)
        assert resp.status_code == 400 and err(resp) == "invalid", query
    assert client.get("/api/v1/devices/nope/telemetry", headers=h).status_code == 404
    assert client.get("/api/v1/models/digits/7/telemetry", headers=h).status_code == 404


def test_events_newest_first(app: Any, client: Any, tokens: Any) -> None:
    feed(app, helpers.event("cam-1", 1, "downloading"), helpers.event("cam-1", 2, "committed"))
    events = client.get("/api/v1/devices/cam-1/events", headers=tokens["viewer"]).get_json()
    assert [e["step"] for e in events] == ["committed", "downloading"]
    resp = client.get("/api/v1/devices/cam-1/events?limit=x", headers=tokens["viewer"])
    assert resp.status_code == 400


# --------------------------------------------------------------------------- rollouts


def test_rollout_lifecycle_over_the_api(
    app: Any, client: Any, tokens: Any, make_bundle: Any
) -> None:
    h = tokens["operator"]
    upload(client, h, make_bundle(1))
    upload(client, h, make_bundle(2))
    feed(app, *[helpers.status(f"cam-{i}", version=1) for i in range(4)])
    for i in range(4):
        client.patch(f"/api/v1/devices/cam-{i}", json={"tags": ["lab"]}, headers=h)
    body = {"model": "digits", "version": 2, "target": {"tags": ["lab"]}, "waves": [50, 100]}
    resp = client.post("/api/v1/rollouts", json=body, headers=h)
    assert resp.status_code == 201, resp.get_json()
    rid = resp.get_json()["id"]
    r = client.get(f"/api/v1/rollouts/{rid}", headers=tokens["viewer"]).get_json()
    assert r["state"] == "running" and r["target_size"] == 4
    assert r["waves"][0]["devices"] == 2 and r["waves"][0]["pending"] == 2
    assert [a["to"] for a in r["audit"]] == ["draft", "draft", "running"]
    assert [a["action"] for a in r["audit"]] == ["create", "champion", "start"]  # v2 vs v1
    # Two devices report the commit: the rollout moves on at the next tick.
    deps = {d["device"]: d for d in r["deployments"]}
    msgs = []
    for i, (dev, d) in enumerate(sorted(deps.items())):
        msgs += [helpers.status(dev, version=2, seq=10 + i),
                 helpers.event(dev, 20 + i, "committed", rid, d["command"], 2)]  # fmt: skip
    feed(app, *msgs)
    app.extensions["edgekit_hub"].service.tick()
    r = client.get(f"/api/v1/rollouts/{rid}", headers=h).get_json()
    assert r["current_wave"] == 1 and r["waves"][0]["committed"] == 2
    assert client.post("/api/v1/rollouts", json=body, headers=h).status_code == 409  # one at a time
    assert client.post(f"/api/v1/rollouts/{rid}/pause", headers=h).get_json()["state"] == "paused"
    resp = client.post(f"/api/v1/rollouts/{rid}/pause", headers=h)
    assert resp.status_code == 409 and err(resp) == "conflict"
    assert client.post(f"/api/v1/rollouts/{rid}/resume", headers=h).get_json()["state"] == "running"
    r = client.post(f"/api/v1/rollouts/{rid}/rollback", headers=h).get_json()
    assert r["state"] == "rolled_back"
    assert {d["status"] for d in r["deployments"] if d["from"]} >= {"reverting"}
    listing = client.get("/api/v1/rollouts", headers=h).get_json()
    assert [x["id"] for x in listing] == [rid]
    resp = client.delete("/api/v1/models/digits/1", headers=tokens["admin"])
    assert resp.status_code == 409  # devices still run it


@pytest.mark.parametrize(
    "body, status",
    [
        ({"model": "digits", "version": 9, "target": {"all": True}}, 404),
        ({"model": "digits", "version": 1, "target": {}}, 400),
        ({"model": "digits", "version": 1, "target": {"all": True}, "waves": [0]}, 400),
        ({"model": "digits"}, 400),
        ([1, 2], 400),
        ({"model": "digits", "version": 1, "target": {"all": True}, "start": "yes"}, 400),
    ],
)
def test_bad_rollout_requests(
    client: Any, tokens: Any, make_bundle: Any, body: Any, status: int
) -> None:
    upload(client, tokens["operator"], make_bundle(1))
    resp = client.post("/api/v1/rollouts", json=body, headers=tokens["operator"])
    assert resp.status_code == status and err(resp)


def test_unknown_rollouts_and_actions(client: Any, tokens: Any) -> None:
    h = tokens["operator"]
    assert err(client.get("/api/v1/rollouts/nope", headers=h)) == "not_found"
    assert client.post("/api/v1/rollouts/nope/pause", headers=h).status_code == 404
    assert client.post("/api/v1/rollouts/nope/explode", headers=h).status_code == 404
    assert client.post("/api/v1/rollouts/nope/pause", headers=tokens["viewer"]).status_code == 403


# --------------------------------------------------------------------------- misc


def test_openapi_and_metrics(app: Any, client: Any) -> None:
    from cloud.hub.rollout import GATE_METRICS
    from cloud.hub.rollout.core.spec import ROLLOUT_FIELDS

    doc = client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1") and "/rollouts/{id}/rollback" in doc["paths"]
    body = doc["paths"]["/rollouts"]["post"]["requestBody"]["content"]["application/json"]
    # the document names every field the API takes, and every gate metric
    # (and "force", which is the request's, not the spec's: the champion check's override)
    assert set(body["schema"]["properties"]) == ROLLOUT_FIELDS | {"force"}
    assert set(body["schema"]["properties"]["gates"]["properties"]) == set(GATE_METRICS)
    feed(app, helpers.status("cam-1"), helpers.telemetry("cam-1", seq=2))
    text = client.get("/metrics").data.decode()
    assert 'edgekit_devices{state="online"} 1' in text
    assert 'edgekit_inferences_total{model="digits",version="1"} 50.0' in text
    assert 'edgekit_inference_errors_total{model="digits",version="1"} 1.0' in text


def test_every_api_route_is_in_the_openapi_document(app: Any, client: Any) -> None:
    import re

    doc = client.get("/api/v1/openapi.json").get_json()

    def shape(path: str) -> str:  # parameter names may differ: compare the path's shape
        return re.sub(r"\{[^}]+\}", "{}", path)

    documented = {(m, shape(p)) for p, ops in doc["paths"].items() for m in ops}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/"):
            continue
        path = shape(re.sub(r"<[^>]+>", "{}", rule.rule[len("/api/v1") :]))
        # a variable segment (``<action>``) is documented once per value it takes
        pattern = re.compile(re.escape(path).replace(r"\{\}", "[^/]+") + "$")
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            assert any(m == method.lower() and pattern.match(p) for m, p in documented), (
                f"{method} {rule.rule} is not in the OpenAPI document"
            )


def test_unknown_routes_and_methods_are_json_4xx(client: Any, tokens: Any) -> None:
    resp = client.get("/api/v1/nothing", headers=tokens["viewer"])
    assert resp.status_code == 404 and err(resp) == "not_found"
    resp = client.put("/api/v1/devices", headers=tokens["viewer"])
    assert resp.status_code == 405 and err(resp)


def test_relative_data_dir_still_serves_bundles(
    tmp_path: Path, keys: Any, make_bundle: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`edgekit hub serve --data-dir hub-data` (a relative dir) must find its
    bundles: Flask would resolve a relative path against the package, not the cwd."""
    from cloud.hub.app import create_app
    from cloud.hub.http.auth import create_api_token

    monkeypatch.chdir(tmp_path)
    config = HubConfig(
        data_dir=Path("hub-data"), trusted_key=keys[1], background=False, testing=True
    )
    assert config.data_dir == tmp_path / "hub-data"
    app = create_app(config)
    try:
        with app.extensions["edgekit_hub"].db.session() as s:
            h = {"Authorization": f"Bearer {create_api_token(s, 'operator', 'op')}"}
        client = app.test_client()
        path = make_bundle(1)
        assert upload(client, h, path).status_code == 201
        resp = client.get("/api/v1/models/digits/1/bundle", headers=h)
        assert resp.status_code == 200 and resp.data == path.read_bytes()
    finally:
        app.extensions["edgekit_hub"].stop()
        app.extensions["edgekit_hub"].db.dispose()
