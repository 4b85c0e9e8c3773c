"""Enrollment takes only device ids every broker and topic accepts (docs/cluster.md), and
says why it refuses one; the token stays unused so the device can retry with a good id."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.hub.http.auth import create_enrollment_token


@pytest.mark.parametrize(
    ("device", "words"),
    [
        ("cam.1", "'.' breaks topics on NATS"),
        ("x" * 65, "it has 65 characters"),
        ("-cam", "starting with a letter or digit"),
        ("cam 1", "1-64 letters, digits, '-' or '_'"),
        (7, "1-64 letters"),
    ],
)
def test_enrollment_refuses_ids_brokers_cannot_carry(
    app: Any, client: Any, device: object, words: str
) -> None:
    with app.extensions["edgekit_hub"].db.session() as s:
        token = create_enrollment_token(s, [])
    resp = client.post("/api/v1/enroll", json={"token": token, "device": device})
    assert resp.status_code == 400, resp.get_json()
    body = resp.get_json()
    assert body["error"]["code"] == "invalid" and words in body["error"]["message"], body
    ok = client.post("/api/v1/enroll", json={"token": token, "device": "cam_1-a"})
    assert ok.status_code == 200, ok.get_json()  # the refused attempt did not spend the token
    assert ok.get_json()["device"] == "cam_1-a"
