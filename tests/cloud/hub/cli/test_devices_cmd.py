"""``edgekit hub devices list|show`` against a live in-process hub."""

from __future__ import annotations

import json
from typing import Any

from tests.cloud.hub import helpers
from tests.cloud.hub.cli.conftest import LiveHub


def test_list_is_a_table_and_json_is_the_api(cli: Any, live_hub: LiveHub) -> None:
    live_hub.fleet(3)
    live_hub.feed(helpers.telemetry("cam-0", seq=5), helpers.status("cam-9", version=None))
    r = cli("devices", "list")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split()[:3] == ["ID", "ONLINE", "MODEL"]
    row = next(line for line in lines if line.startswith("cam-0 "))
    assert "digits v1" in row and "lab" in row and " 2 " in row  # p95 ms from telemetry
    assert next(line for line in lines if line.startswith("cam-9 ")).split()[2] == "-"
    r = cli("devices", "list", "--json")
    assert json.loads(r.out) == live_hub.api("GET", "/devices").get_json()
    r = cli("devices", "list", "--tag", "lab", "--json")
    assert sorted(d["id"] for d in json.loads(r.out)) == ["cam-0", "cam-1", "cam-2"]
    r = cli("devices", "list", "--tag", "nope")
    assert r.code == 0 and "(none)" in r.out


def test_show_has_kpis_and_events(cli: Any, live_hub: LiveHub) -> None:
    live_hub.fleet(1)
    live_hub.feed(helpers.telemetry("cam-0", seq=5), helpers.event("cam-0", 6, "committed"))
    r = cli("devices", "show", "cam-0")
    assert r.code == 0, r.err
    assert "device:" in r.out and "cam-0" in r.out and "digits v1 (onnxruntime-fp32)" in r.out
    assert "committed" in r.out and "step committed" in r.out  # the events table
    r = cli("devices", "show", "cam-0", "--json", "--events", "0")
    body = json.loads(r.out)
    assert body["events"] == [] and body["capabilities"] == {"cores": 2}
    assert {k: v for k, v in body.items() if k != "events"} == live_hub.api(
        "GET", "/devices/cam-0").get_json()  # fmt: skip


def test_unknown_device_and_bad_flags(cli: Any, live_hub: LiveHub) -> None:
    r = cli("devices", "show", "nope")
    assert r.code == 2 and "404 not_found" in r.err and "device 'nope' is unknown" in r.err
    assert cli("devices", "show", "cam-0", "--events", "-1").code == 2  # argparse
    assert cli("devices", "list", "--version", "two").code == 2
    r = cli("devices", "show", "../rollouts")  # an id is one path segment, never more path
    assert r.code == 2 and "404" in r.err
