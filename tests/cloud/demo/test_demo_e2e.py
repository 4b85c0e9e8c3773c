"""The whole story, as a user runs it: `edgekit demo --exit-when-done` on embedded defaults."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.integration
def test_demo_tells_the_whole_story(tmp_path: Path) -> None:
    # Checked here, not at import, so collecting the unit tier never loads TensorFlow.
    pytest.importorskip("tensorflow")
    pytest.importorskip("amqtt")
    summary = tmp_path / "summary.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge.cli",
            "demo",
            "--exit-when-done",
            "--devices",
            "6",
            "--workdir",
            str(tmp_path / "demo"),
            "--summary-json",
            str(summary),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    checks = [ln for ln in proc.stdout.splitlines() if "[FAILED]" in ln or "error:" in ln]
    tail = "\n".join(checks) + "\n--- stdout tail ---\n" + proc.stdout[-3000:]
    assert proc.returncode == 0, tail
    doc = json.loads(summary.read_text())
    assert doc["ok"] is True, doc["checks"]
    assert [(r["version"], r["state"]) for r in doc["rollouts"]] == [
        (1, "completed"),
        (2, "completed"),
        (3, "rolled_back"),
        (4, "completed"),
    ]
    versions = {v["version"]: v["accuracy"] for v in doc["versions"]}
    assert versions[2] >= 0.95 and versions[3] < 0.5, versions
    assert len(doc["devices"]) == 6 and {d["version"] for d in doc["devices"]} == {4}
    loop = doc["loop"]
    assert loop["accuracy_after"] >= loop["accuracy_before"] + 0.3, loop
    assert loop["champion"]["decision"] == "better", loop["champion"]
    assert doc["drift_alerts"], "the shifted devices must raise drift alerts"
    assert "fleet page: http://127.0.0.1:" in proc.stdout
    auth = [c for c in doc["checks"] if c["check"].startswith("the broker refuses")]
    assert auth and auth[0]["ok"], "the embedded broker must run with authentication on"
    assert "not authorized" in auth[0]["detail"].lower(), auth
