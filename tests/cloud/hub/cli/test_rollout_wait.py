"""``--wait``'s polling: backoff while nothing changes, fast again after a change, the
progress bar on request, and a hub that goes away."""

from __future__ import annotations

from typing import Any

import pytest

from cloud.hub.cli.client import Exit, HubClient, HubUnreachable
from cloud.hub.cli.rollout_wait import wait
from tests.cloud.hub.cli.conftest import LiveHub
from tests.edge.brokers import free_port


def test_backoff_until_the_rollout_ends(
    live_hub: LiveHub, make_bundle: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    live_hub.upload(make_bundle(1))
    live_hub.upload(make_bundle(2))
    live_hub.fleet(2)
    body = {"model": "digits", "version": 2, "target": {"all": True}}
    rid = live_hub.api("POST", "/rollouts", json=body).get_json()["id"]
    delays: list[float] = []

    def sleep(s: float) -> None:
        delays.append(s)
        if len(delays) == 8:
            assert live_hub.api("POST", f"/rollouts/{rid}/abort").status_code == 200

    client = HubClient(live_hub.url, live_hub.tokens["viewer"])
    r, code = wait(client, rid, 60, interval=1.0, max_interval=3.0, progress=True, sleep=sleep)
    assert code is Exit.ROLLOUT_FAILED and r["state"] == "aborted"
    assert delays == [1.0, 1.5, 2.25, 3.0, 3.0, 3.0, 3.0, 3.0]
    assert "running" in capsys.readouterr().err  # the tqdm bar's description


def test_a_hub_that_never_answers_is_unreachable_at_the_deadline() -> None:
    client = HubClient(f"http://127.0.0.1:{free_port()}", "ekt_x", timeout=1)
    slept: list[float] = []
    with pytest.raises(HubUnreachable) as exc:
        wait(client, "r1", 0.5, interval=0.1, progress=False, sleep=slept.append)
    assert exc.value.code is Exit.UNREACHABLE and slept  # retried before giving up
