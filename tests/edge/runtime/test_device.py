"""Device description: cheap at start (no runtime imported), filled in when a runtime loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.runtime import device

REPO = Path(__file__).resolve().parents[3]


def test_describing_the_device_imports_no_runtime() -> None:
    code = (
        "import json, sys\n"
        "from edge.runtime.device import describe_device\n"
        "caps = describe_device()\n"
        "heavy = [m for m in ('onnxruntime', 'openvino', 'ai_edge_litert', 'tensorflow')"
        " if m in sys.modules]\n"
        "print(json.dumps({'caps': caps, 'imported': heavy}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    report = json.loads(out.stdout)
    assert report["imported"] == []
    caps = report["caps"]
    assert caps["cores"] >= 1 and caps["cpu"]["arch"]
    assert set(caps["runtimes"]) == {"litert", "onnxruntime", "openvino"}
    litert = caps["runtimes"]["litert"]  # an edge install always has LiteRT
    assert litert["available"] is True and litert["probed"] is False
    assert litert["version"] and litert["devices"] is None


def test_a_loaded_runtime_is_probed_and_filled_in_in_place() -> None:
    caps = device.describe_device()
    runtimes = caps["runtimes"]
    device.runtime_loaded("litert")
    assert runtimes["litert"]["probed"] is True
    assert "CPU" in runtimes["litert"]["devices"]
    assert device.describe_device()["runtimes"]["litert"]["probed"] is True  # cached
    device.runtime_loaded("no-such-runtime")  # ignored, not an error
    json.dumps(caps)  # still plain JSON for the status message


def test_a_missing_runtime_package_is_reported_with_a_hint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(
        device.RUNTIME_PACKAGES, "openvino", (("edgekit_no_such_pkg", ("edgekit-no-such",)),)
    )
    monkeypatch.delitem(device._probed, "openvino", raising=False)
    info = device.describe_runtimes()["openvino"]
    assert info["available"] is False and "pip install edgekit-no-such" in info["reason"]
