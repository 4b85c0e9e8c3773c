"""``edgekit hub rollout ...`` against a live in-process hub: flags and spec files, what is
refused before a request, env vs flags, tables vs JSON, and every exit code."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from tests import waiting
from tests.cloud.hub.cli.conftest import LiveHub
from tests.edge.brokers import free_port


@pytest.fixture
def fleet(live_hub: LiveHub, make_bundle: Any) -> list[str]:
    live_hub.upload(make_bundle(1))
    live_hub.upload(make_bundle(2))
    return live_hub.fleet(4)


def rollouts(live_hub: LiveHub) -> list[Any]:
    return list(live_hub.api("GET", "/rollouts").get_json())


def test_create_from_flags_sends_the_spec(cli: Any, live_hub: LiveHub, fleet: list[str]) -> None:
    r = cli("rollout", "create", "digits", "2", "--tag", "lab", "--waves", "50,100",
            "--soak", "30", "--gate", "p95_latency_ms=off", "--gate", "error_rate=0.05",
            "--on-error", "rollback", "--gate-min-inferences", "10")  # fmt: skip
    assert r.code == 0, r.err
    rid = r.out.splitlines()[-1]  # the id is the last line, for `| tail -n1`
    spec = live_hub.api("GET", f"/rollouts/{rid}").get_json()["spec"]
    assert spec["target"]["tags"] == ["lab"] and spec["waves"] == [50.0, 100.0]
    assert spec["soak_seconds"] == 30 and spec["error_action"] == "rollback"
    assert spec["gates"]["p95_latency_ms"] is None and spec["gates"]["error_rate"] == 0.05
    assert spec["gate_min_inferences"] == 10


def test_spec_file_json_and_toml_with_flags_winning(
    cli: Any, live_hub: LiveHub, fleet: list[str], tmp_path: Path
) -> None:
    toml = tmp_path / "r.toml"
    toml.write_text('model = "digits"\nversion = 2\nwaves = [{count = 1}, {count = 4}]\n'
                    'start = false\n[target]\ntags = ["lab"]\n[gates]\ndrift = 0.3\n')  # fmt: skip
    r = cli("rollout", "create", "--spec", str(toml), "--gate", "accuracy=off", "--json")
    assert r.code == 0, r.err
    body = json.loads(r.out)
    assert body["state"] == "draft" and body["spec"]["waves"] == [{"count": 1}, {"count": 4}]
    assert body["spec"]["gates"]["drift"] == 0.3 and body["spec"]["gates"]["accuracy"] is None
    assert cli("rollout", "abort", body["id"]).code == 0
    js = tmp_path / "r.json"
    js.write_text(json.dumps({"model": "digits", "version": 1, "target": {"all": True}}))
    r = cli("rollout", "create", "--spec", str(js), "digits", "2", "--draft", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["version"] == 2  # the positional version overrides the file


@pytest.mark.parametrize(
    "args, message",
    [
        (["digits", "2"], "no target"),
        (["--tag", "lab"], "no model"),
        (["digits", "2", "--tag", "lab", "--waves", "50,10"], "strictly increase"),
        (["digits", "2", "--tag", "lab", "--waves", "ten"], "--waves takes"),
        (["digits", "2", "--tag", "lab", "--wave-counts", "1.5"], "whole numbers"),
        (["digits", "2", "--tag", "lab", "--gate", "speed=1"], "METRIC one of"),
        (["digits", "2", "--tag", "lab", "--gate", "drift=high"], "a number or off"),
        (["digits", "2", "--tag", "lab", "--success-threshold", "2"], "success_threshold"),
        (["digits", "2", "--tag", "a b"], "target.tags"),
        (["digits", "0", "--all"], "'version'"),
    ],
)
def test_bad_flags_are_refused_before_any_request(
    cli: Any, live_hub: LiveHub, args: list[str], message: str
) -> None:
    r = cli("rollout", "create", *args)
    assert r.code == 2 and message in r.err, r.err
    assert rollouts(live_hub) == []


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("bad.json", '{"model": "digits", ', "not valid JSON"),
        ("bad.toml", "model = \n", "not valid TOML"),
        ("list.json", "[1, 2]", "must hold an object"),
        ("bin.toml", b"\xff\xfe", "not UTF-8"),
        (
            "extra.json",
            '{"model": "digits", "version": 2, "target": {"all": true}, "x": 1}',
            "unknown rollout field(s): x",
        ),
        (
            "start.json",
            '{"model": "digits", "version": 2, "target": {"all": true}, "start": "yes"}',
            "'start' must be true or false",
        ),
    ],
)
def test_malformed_spec_files(
    cli: Any, live_hub: LiveHub, tmp_path: Path, name: str, content: Any, message: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    r = cli("rollout", "create", "--spec", str(path))
    assert r.code == 2 and message in r.err, r.err
    r = cli("rollout", "create", "--spec", str(tmp_path / "missing.json"))
    assert r.code == 2 and "cannot read spec" in r.err


def test_the_hubs_refusals_are_printed(cli: Any, live_hub: LiveHub, fleet: list[str]) -> None:
    r = cli("rollout", "create", "digits", "9", "--all")
    assert r.code == 2 and "404 not_found" in r.err and "digits" in r.err
    rid = cli("rollout", "create", "digits", "2", "--all").out.splitlines()[-1]
    r = cli("rollout", "create", "digits", "2", "--all")  # one rollout of a model at a time
    assert r.code == 2 and "409 conflict" in r.err
    assert cli("rollout", "pause", rid).code == 0
    r = cli("rollout", "pause", rid)
    assert r.code == 2 and "cannot pause a rollout that is paused" in r.err
    for action in ("show", "pause", "abort"):
        r = cli("rollout", action, "no-such-id")
        assert r.code == 2 and "404 not_found" in r.err, action


def test_env_flags_and_auth(
    cli: Any, live_hub: LiveHub, fleet: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli("rollout", "list").code == 0  # env only
    monkeypatch.setenv("EDGEKIT_HUB", f"http://127.0.0.1:{free_port()}")
    r = cli("rollout", "list")
    assert r.code == 3 and "cannot reach the hub" in r.err  # hub down
    assert cli("rollout", "list", "--hub", live_hub.url).code == 0  # the flag wins
    r = cli("rollout", "list", "--hub", live_hub.url, "--token", "ekt_wrong")
    assert r.code == 3 and "401" in r.err
    r = cli("rollout", "create", "digits", "2", "--all", "--hub", live_hub.url,
            "--token", live_hub.tokens["viewer"])  # fmt: skip
    assert r.code == 3 and "403 forbidden" in r.err
    monkeypatch.delenv("EDGEKIT_HUB")
    r = cli("rollout", "list")
    assert r.code == 2 and "EDGEKIT_HUB" in r.err
    r = cli("rollout", "list", "--hub", "ftp://x")
    assert r.code == 2 and "http(s) URL" in r.err
    monkeypatch.delenv("EDGEKIT_TOKEN")
    r = cli("rollout", "list", "--hub", live_hub.url)
    assert r.code == 2 and "EDGEKIT_TOKEN" in r.err
    assert cli("rollout", "list", "--state", "bogus", "--hub", live_hub.url).code == 2


def test_list_show_and_actions(cli: Any, live_hub: LiveHub, fleet: list[str]) -> None:
    rid = cli("rollout", "create", "digits", "2", "--tag", "lab", "--waves", "50,100"
              ).out.splitlines()[-1]  # fmt: skip
    live_hub.commit(rid, 2)
    r = cli("rollout", "list")
    assert r.code == 0 and r.out.splitlines()[0].split()[:3] == ["ID", "STATE", "MODEL"]
    assert rid in r.out and "running" in r.out and "digits v2" in r.out
    assert [x["id"] for x in json.loads(cli("rollout", "list", "--json").out)] == [rid]
    assert json.loads(cli("rollout", "list", "--state", "completed", "--json").out) == []
    r = cli("rollout", "show", rid)
    assert r.code == 0 and "wave:" in r.out and "2/2" in r.out and "tags lab (4 devices)" in r.out
    assert "committed" in r.out and "GATE" in r.out and "DEVICE" in r.out
    shown = json.loads(cli("rollout", "show", rid, "--json").out)
    assert shown == live_hub.api("GET", f"/rollouts/{rid}").get_json() | {
        "updated": shown["updated"]}  # fmt: skip
    for action, state in (("pause", "paused"), ("resume", "running"), ("rollback", "rolled_back")):
        r = cli("rollout", action, rid)
        assert r.code == 0 and r.out.strip().endswith(f"now {state}"), r.err
        assert live_hub.api("GET", f"/rollouts/{rid}").get_json()["state"] == state
    assert json.loads(cli("rollout", "show", rid, "--json").out)["state"] == "rolled_back"


def test_wait_exit_codes(cli: Any, live_hub: LiveHub, fleet: list[str]) -> None:
    rid = cli("rollout", "create", "digits", "2", "--tag", "lab").out.splitlines()[-1]
    r = cli("rollout", "show", rid, "--wait", "--timeout", "0.3", "--poll", "0.05")
    assert r.code == 4 and "timed out" in r.err and "still running" in r.err
    cli("rollout", "pause", rid)
    r = cli("rollout", "show", rid, "--wait", "--json")
    assert r.code == 5 and json.loads(r.out)["state"] == "paused"
    cli("rollout", "resume", rid)
    live_hub.commit(rid, 2)
    r = cli("rollout", "show", rid, "--wait")
    assert r.code == 0 and "completed" in r.err, r.err
    cli("rollout", "rollback", rid)
    r = cli("rollout", "show", rid, "--wait", "--json")
    assert r.code == 1 and json.loads(r.out)["state"] == "rolled_back"
    rid = cli("rollout", "create", "digits", "2", "--all", "--draft").out.splitlines()[-1]
    cli("rollout", "abort", rid)
    r = cli("rollout", "show", rid, "--wait")
    assert r.code == 1 and f"rollout {rid} aborted" in r.err
    assert cli("rollout", "show", rid, "--wait", "--timeout", "0").code == 2
    assert cli("rollout", "show", rid, "--wait", "--timeout", "nan").code == 2


def test_create_wait_follows_the_rollout_to_its_end(
    cli: Any, live_hub: LiveHub, fleet: list[str]
) -> None:
    """The CLI waits in a thread while the 'devices' commit wave by wave."""
    out: dict[str, Any] = {}

    def run() -> None:
        out["r"] = cli("rollout", "create", "digits", "2", "--tag", "lab", "--waves", "50,100",
                       "--wait", "--poll", "0.05", "--timeout", "60", "--json")  # fmt: skip

    t = threading.Thread(target=run)
    t.start()
    rid = waiting.wait_for(lambda: [x["id"] for x in rollouts(live_hub)], 10, "the rollout")[0]
    live_hub.commit(rid, 2, seq=100)
    waiting.wait_for(lambda: live_hub.api("GET", f"/rollouts/{rid}").get_json()["current_wave"]
                     == 1, 10, "the second wave")  # fmt: skip
    live_hub.commit(rid, 2, seq=200)

    def completed() -> bool:
        live_hub.tick()
        return bool(live_hub.api("GET", f"/rollouts/{rid}").get_json()["state"] == "completed")

    waiting.wait_for(completed, 10, "completed")
    t.join(30)
    r = out["r"]
    assert r.code == 0, r.err
    body = json.loads(r.out)
    assert body["state"] == "completed" and body["committed"] == 4
