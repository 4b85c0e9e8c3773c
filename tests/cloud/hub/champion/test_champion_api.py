"""The champion check through the API, as the demo tells it: the bad v3 is refused at
rollout creation on its test metrics (11 % against v2's 97 %) unless forced, and recorded;
v4, retrained on field data, beats v2 on newer labeled field data and is accepted."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from tests.cloud.hub import helpers
from tests.cloud.hub.champion import field
from tests.cloud.hub.champion.conftest import Digits

DEVICES = ["cam-0", "cam-1", "shift-0", "shift-1"]


def upload(client: Any, h: dict[str, str], path: Path) -> dict[str, Any]:
    resp = client.post("/api/v1/models", headers=h,
                       data={"bundle": (io.BytesIO(path.read_bytes()), path.name)})  # fmt: skip
    assert resp.status_code == 201, resp.get_json()
    body: dict[str, Any] = resp.get_json()
    return body


def rollout(client: Any, h: dict[str, str], version: int, **extra: Any) -> Any:
    body = {"model": "digits", "version": version, "target": {"all": True}, **extra}
    return client.post("/api/v1/rollouts", headers=h, json=body)


def test_bad_v3_refused_unless_forced_and_v4_accepted(
    any_app: Any, auth: dict[str, dict[str, str]], versions: dict[int, Path], digits: Digits
) -> None:
    c, op = any_app.test_client(), auth["operator"]
    first = upload(c, op, versions[2])
    assert first["champion"]["decision"] == "unknown"  # nothing runs digits yet
    helpers.feed(any_app, *[helpers.status(d, version=2) for d in DEVICES])

    # v3 at upload: no field data yet, so the test metrics decide
    v3 = upload(c, op, versions[3])["champion"]
    assert v3["decision"] == "worse", v3
    assert v3["champion"]["version"] == 2 and v3["field"] is None
    assert "clearly worse" in v3["reason"] and "test accuracy" in v3["reason"]
    shown = c.get("/api/v1/models/digits/3/comparison", headers=auth["viewer"]).get_json()
    assert shown["decision"] == "worse" and shown["context"] == "upload"

    refused = rollout(c, op, 3)
    assert refused.status_code == 409
    body = refused.get_json()
    assert body["error"]["code"] == "champion" and body["champion"]["decision"] == "worse"
    assert c.get("/api/v1/rollouts", headers=op).get_json() == []  # nothing was created

    forced = rollout(c, op, 3, force=True)
    assert forced.status_code == 201, forced.get_json()
    rid = forced.get_json()["id"]
    r = c.get(f"/api/v1/rollouts/{rid}", headers=op).get_json()
    audit = [a for a in r["audit"] if a["action"] == "force"]
    assert len(audit) == 1 and audit[0]["actor"] == "operator"
    assert "overridden" in audit[0]["reason"]
    assert r["champion"]["forced"] is True and r["champion"]["decision"] == "worse"
    assert c.post(f"/api/v1/rollouts/{rid}/abort", headers=op).status_code == 200

    # field data: shifted digits from two devices, labeled; frozen into digits-field@1
    half = len(digits.train_x) // 2
    trained = field.capture(any_app, "shift-0", field.shifted(digits.train_x[:half]),
                            digits.train_y[:half])  # fmt: skip
    field.label_known(c, op, trained, digits.train_y[:half])
    made = c.post("/api/v1/datasets", headers=op,
                  json={"name": "digits-field", "filter": {"device": "shift-0"}})  # fmt: skip
    assert made.status_code == 201 and made.get_json()["version"] == 1
    # newer field data v4 never saw
    fresh = field.capture(any_app, "shift-1", field.shifted(digits.held_x), digits.held_y)
    field.label_known(c, op, fresh, digits.held_y)

    v4 = upload(c, op, versions[4])["champion"]
    assert v4["decision"] == "better", v4["reason"]
    assert v4["excluded"] == half  # its own training samples do not judge it
    f = v4["field"]
    assert f["n"] == len(fresh) and f["by_device"] == {"shift-1": len(fresh)}
    assert f["candidate"]["low"] > f["champion"]["value"]
    assert set(f["per_class"]) == {str(d) for d in range(10)}
    assert 0.0 < f["agreement"]["value"] < 1.0
    assert v4["candidate"]["variant"] == "onnxruntime-fp32"

    ok = rollout(c, op, 4)
    assert ok.status_code == 201, ok.get_json()
    r = c.get(f"/api/v1/rollouts/{ok.get_json()['id']}", headers=op).get_json()
    assert r["champion"]["decision"] == "better" and r["champion"]["forced"] is False
    assert any(a["action"] == "champion" and "better" in a["reason"] for a in r["audit"])


def test_field_data_decides_over_test_metrics(
    any_app: Any, auth: dict[str, dict[str, str]], versions: dict[int, Path], digits: Digits
) -> None:
    """With enough labeled field data v3 is worse on the field itself (not only on its
    test metrics), and a manual re-check is stored."""
    c, op = any_app.test_client(), auth["operator"]
    upload(c, op, versions[2])
    helpers.feed(any_app, helpers.status("cam-0", version=2))
    ids = field.capture(any_app, "cam-0", digits.held_x[:120], digits.held_y[:120])
    field.label_known(c, op, ids, digits.held_y[:120])
    v3 = upload(c, op, versions[3])["champion"]
    assert v3["decision"] == "worse"
    assert v3["field"]["n"] == 120 and "field samples" in v3["reason"]
    assert v3["field"]["candidate"]["high"] < v3["field"]["champion"]["value"]
    again = c.post("/api/v1/models/digits/3/comparison", headers=op)
    assert again.status_code == 201 and again.get_json()["context"] == "manual"
    assert c.get("/api/v1/models/digits/2/comparison", headers=op).get_json()["decision"] == (
        "unknown"
    )
    assert c.post("/api/v1/models/digits/3/comparison",
                  headers=auth["viewer"]).status_code == 403  # fmt: skip


def test_bad_force_value_and_unknown_model(any_app: Any, auth: dict[str, dict[str, str]]) -> None:
    c, op = any_app.test_client(), auth["operator"]
    assert rollout(c, op, 1, force="yes").status_code == 400
    assert rollout(c, op, 9).status_code == 404
    assert c.get("/api/v1/models/digits/9/comparison", headers=op).status_code == 404
