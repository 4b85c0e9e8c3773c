"""The closed loop end to end: `edgekit demo --exit-when-done` with real agents on a real
Mosquitto (a private one on a free port, so no other test's devices share its topics) and
the hub on SQLite and on the machine's PostgreSQL (a throw-away schema, via `--db`).

The demo's own checks say whether each step behaved; this test also reads the summary's
``loop`` to hold the figures to what the story claims (docs/demo.md, "The loop").
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cloud.hub.pg_schema import throwaway_schema
from tests.edge.brokers import PrivateBroker, private_broker  # noqa: F401 - pytest fixture

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture(params=["sqlite", "postgresql"])
def db_args(request: pytest.FixtureRequest) -> Iterator[list[str]]:
    if request.param == "sqlite":
        yield []
        return
    with throwaway_schema("demo") as url:
        yield ["--db", url]


def test_the_loop_closes(
    tmp_path: Path,
    db_args: list[str],
    private_broker: PrivateBroker,  # noqa: F811
) -> None:
    pytest.importorskip("tensorflow")
    summary = tmp_path / "summary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", "demo", "--exit-when-done", "--devices", "6",
         "--broker", private_broker.url,
         "--workdir", str(tmp_path / "demo"), "--summary-json", str(summary), *db_args],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    failed = [ln for ln in proc.stdout.splitlines() if "[FAILED]" in ln or "error:" in ln]
    tail = "\n".join(failed) + "\n--- stdout tail ---\n" + proc.stdout[-4000:]
    assert proc.returncode == 0, tail
    doc = json.loads(summary.read_text())
    assert doc["ok"] is True, doc["checks"]
    loop = doc["loop"]
    assert loop["version"] == 4 and loop["dataset"]["name"] == "digits-field", loop
    assert loop["labeled"] >= 2 * (400 + 60) and loop["captured"] >= loop["labeled"], loop
    # v2 gets most rotated digits wrong; v4, trained on them, gets most right.
    assert loop["accuracy_before"] < 0.5 < 0.8 <= loop["accuracy_after"], loop
    champion = loop["champion"]
    assert champion["decision"] == "better" and champion["champion"]["version"] == 2
    assert champion["field"]["n"] >= 30, champion
    assert not any(loop["drift_after"].values()), loop
    assert [(r["version"], r["state"]) for r in doc["rollouts"]] == [
        (1, "completed"), (2, "completed"), (3, "rolled_back"), (4, "completed"),
    ]  # fmt: skip
    assert {d["version"] for d in doc["devices"]} == {4}
    refusals = [c for c in doc["checks"] if c["check"].startswith("the champion check refuses")]
    assert len(refusals) == 2 and all(c["ok"] for c in refusals), refusals
