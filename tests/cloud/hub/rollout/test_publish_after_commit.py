"""Commands go out only once the deployment they carry out is committed: an agent answers
in milliseconds, and the hub lets a device download a bundle only for a recorded
deployment, so a command published inside the transaction raced its own row (HTTP 403)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cloud.hub.storage import Deployment
from edge.contract import Event, ModelRef, Status, encode_json, topic
from tests.bundles import make_bundle
from tests.cloud.hub.helpers import feed
from tests.cloud.hub.http.test_api import upload


def status(device: str, version: int, seq: int) -> tuple[str, bytes]:
    s = Status(device, time.time(), seq, "online", "0.1.0", ModelRef("digits", version), "b1", True)
    return topic(device, "status"), encode_json(s.to_dict())


def test_every_command_is_published_after_its_deployment_is_committed(
    app: Any, client: Any, tokens: Any, keys: tuple[Path, Path], tmp_path: Path
) -> None:
    h = tokens["operator"]
    for v in (1, 2):
        assert upload(client, h, make_bundle(tmp_path / f"d{v}.ekb", keys[0], version=v,
                                             seed=v)).status_code == 201  # fmt: skip
    feed(app, status("a", 1, 1), status("b", 1, 1))
    hub = app.extensions["edgekit_hub"]
    seen: list[tuple[str, bool]] = []

    def publisher(device: str, cmd: Any) -> None:
        # What another connection (the download request's) sees at this moment.
        with hub.db.session() as other:
            mine = (Deployment.device_id == device, Deployment.command_id == cmd.id)
            row = other.scalar(select(Deployment).where(*mine))
            seen.append((device, row is not None))

    hub.service.publisher = publisher
    body = {"model": "digits", "version": 2, "target": {"all": True}, "waves": [50, 100],
            "soak_seconds": 0, "error_threshold": 0, "gates": {}}  # fmt: skip
    resp = client.post("/api/v1/rollouts", json=body, headers=h)
    assert resp.status_code == 201, resp.get_json()
    rid = resp.get_json()["id"]
    assert len(seen) == 1 and seen[0][1], seen  # wave 1, from the API request
    first = seen[0][0]
    # the first device commits; the ticker starts wave 2
    deps = client.get(f"/api/v1/rollouts/{rid}", headers=h).get_json()["deployments"]
    cid = next(d["command"] for d in deps if d["device"] == first)
    ev = Event(first, time.time(), 5, "deploy", "committed", "committed", rid, cid, 2)
    feed(app, (topic(first, "events"), encode_json(ev.to_dict())), status(first, 2, 6))
    for _ in range(3):
        hub.service.tick()
    assert [d for d, _ok in seen] == [first, "b" if first == "a" else "a"], seen
    assert all(ok for _d, ok in seen), seen  # wave 2, from the ticker
