"""The install self-test on the real reference bundle: every variant, or only the pinned."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.bundle import extract_bundle
from edge.contract import Manifest
from edge.errors import SelfTestError
from edge.runtime import self_test

MODELS = Path(__file__).resolve().parents[3] / "models"
BUNDLE, PUB = MODELS / "digits.ekb", MODELS / "dev-signing.pub"
pytestmark = pytest.mark.skipif(not BUNDLE.exists(), reason="models/digits.ekb not built")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Manifest]:
    dest = tmp_path_factory.mktemp("selftest") / "bundle"
    return dest, extract_bundle(BUNDLE, dest, PUB)


def test_unpinned_tests_every_variant(extracted: tuple[Path, Manifest]) -> None:
    dest, manifest = extracted
    report = self_test(dest, manifest, time_budget=0.3)
    statuses = {v.target: v.status for v in report.variants}
    assert len(statuses) == len(manifest.artifacts)
    assert "skipped" not in statuses.values()
    assert report.chosen is not None and statuses[report.chosen.target] == "ok"


def test_pin_skips_other_runtimes_without_loading_them(extracted: tuple[Path, Manifest]) -> None:
    dest, manifest = extracted
    report = self_test(dest, manifest, pin_runtime="litert", time_budget=0.2)
    for v in report.variants:
        if v.runtime == "litert":
            assert v.status == "ok" and v.latency_ms is not None
        else:
            assert v.status == "skipped" and v.latency_ms is None and "pin" in str(v.reason)
    assert report.chosen is not None and report.chosen.runtime == "litert"
    report = self_test(
        dest,
        manifest,
        pin_runtime="litert",
        pin_precision="int8",
        time_budget=0.2,
    )
    assert report.chosen is not None and report.chosen.target == "litert-int8"
    assert [v.target for v in report.variants if v.status == "ok"] == ["litert-int8"]


def test_pinned_device_never_imports_other_runtimes(extracted: tuple[Path, Manifest]) -> None:
    dest, _ = extracted
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from edge.bundle.archive import load_manifest_dir\n"
        "from edge.runtime.selftest import self_test\n"
        f"d = Path({str(dest)!r})\n"
        "r = self_test(d, load_manifest_dir(d), pin_runtime='litert', time_budget=0.1)\n"
        "print(json.dumps({'chosen': r.chosen.target,"
        " 'onnxruntime': 'onnxruntime' in sys.modules, 'openvino': 'openvino' in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"chosen": got["chosen"], "onnxruntime": False, "openvino": False}
    assert got["chosen"].startswith("litert-")


def test_pin_to_a_missing_target_says_so(extracted: tuple[Path, Manifest]) -> None:
    dest, manifest = extracted
    with pytest.raises(SelfTestError, match="pinned variant litert-fp16 is not in the bundle"):
        self_test(dest, manifest, pin_runtime="litert", pin_precision="fp16", time_budget=0.1)
