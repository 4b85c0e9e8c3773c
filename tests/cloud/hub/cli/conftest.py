"""A real hub app served on a free port in a thread (werkzeug), for the API commands: the
CLI talks HTTP to it exactly as to a deployed hub; tests feed device messages the way the
MQTT bridge stores them and tick the rollout service by hand (``background=False``)."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cloud.hub.config import HubConfig
from cloud.hub.ingest import MqttBridge
from edge.cli.main import main
from tests.cloud.hub import helpers


@dataclass
class LiveHub:
    url: str
    app: Any
    tokens: dict[str, str]  # role -> bare API token

    def feed(self, *messages: tuple[str, bytes]) -> None:
        h = self.app.extensions["edgekit_hub"]
        cfg = HubConfig(**{**h.config.__dict__, "broker_url": "mqtt://127.0.0.1:1"})
        MqttBridge(cfg, h.db).flush(list(messages))

    def tick(self) -> None:
        self.app.extensions["edgekit_hub"].service.tick()

    def api(self, method: str, path: str, role: str = "operator", **kw: Any) -> Any:
        client = self.app.test_client()
        auth = {"Authorization": f"Bearer {self.tokens[role]}"}
        return client.open(f"/api/v1{path}", method=method, headers=auth, **kw)

    def upload(self, bundle: Path) -> None:
        data = {"bundle": (io.BytesIO(bundle.read_bytes()), bundle.name)}
        assert self.api("POST", "/models", data=data).status_code == 201

    def fleet(self, n: int = 4, version: int = 1, tag: str = "lab") -> list[str]:
        """``n`` devices reporting ``digits`` v``version``, tagged ``tag``."""
        ids = [f"cam-{i}" for i in range(n)]
        self.feed(*[helpers.status(d, version=version) for d in ids])
        for d in ids:
            assert self.api("PATCH", f"/devices/{d}", json={"tags": [tag]}).status_code == 200
        return ids

    def commit(self, rid: str, version: int, seq: int = 100) -> None:
        """Every pending device of the rollout reports the commit, then one tick (and one
        before: a new wave's deployments are ordered at the tick after the wave starts)."""
        self.tick()
        r = self.api("GET", f"/rollouts/{rid}").get_json()
        msgs = []
        for i, d in enumerate(x for x in r["deployments"] if x["status"] == "pending"):
            msgs += [helpers.status(d["device"], version=version, seq=seq + 2 * i),
                     helpers.event(d["device"], seq + 2 * i + 1, "committed", rid, d["command"],
                                   version)]  # fmt: skip
        self.feed(*msgs)
        self.tick()


@pytest.fixture
def live_hub(app: Any, tokens: dict[str, dict[str, str]]) -> Iterator[LiveHub]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="hub-http", daemon=True)
    thread.start()
    bare = {role: h["Authorization"].removeprefix("Bearer ") for role, h in tokens.items()}
    try:
        yield LiveHub(f"http://127.0.0.1:{server.server_port}", app, bare)
    finally:
        server.shutdown()
        thread.join(10)


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(
    live_hub: LiveHub, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Any:
    """``cli("rollout", "list")`` runs ``edgekit hub rollout list`` in this process against
    the live hub (through EDGEKIT_HUB/EDGEKIT_TOKEN, operator), with its exit code."""
    monkeypatch.setenv("EDGEKIT_HUB", live_hub.url)
    monkeypatch.setenv("EDGEKIT_TOKEN", live_hub.tokens["operator"])

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            code = main(["hub", *args])
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
