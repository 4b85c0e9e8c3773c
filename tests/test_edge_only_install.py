"""An edge-only install (`pip install '.[edge]'`) runs the agent without TensorFlow or Flask.

Runs scripts/edge_only_check: a fresh venv, the package installed with only the `edge`
extra, the agent started on the reference bundle, one inference answered, and the import
log checked for tensorflow, keras, flask and sqlalchemy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(not (REPO / "models" / "digits.ekb").exists(), reason="no reference bundle")
def test_edge_only_install_runs_the_agent() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "edge_only_check")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "FAILED" not in proc.stdout
