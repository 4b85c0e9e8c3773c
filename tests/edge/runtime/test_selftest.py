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


# ------------------------------------------------------------ per-variant tolerance

BROKEN_FP32_NOISE = 0.1  # weight noise that moves the fp32 scores by about 0.02 (measured)


@pytest.fixture(scope="module")
def variant_bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Manifest]]:
    """Real onnxruntime bundles (fp32 + badly calibrated int8), honest and broken, with and
    without per-variant tolerances, extracted and verified."""
    pytest.importorskip("onnxruntime.quantization")
    from cloud.keys import generate_keypair
    from tests.bundles import make_variant_bundle

    root = tmp_path_factory.mktemp("variants")
    priv, pub = generate_keypair(root / "keys")
    out: dict[str, tuple[Path, Manifest]] = {}
    for name, noise, per_variant in (
        ("honest", 0.0, True),
        ("broken", BROKEN_FP32_NOISE, True),
        ("broken_old_style", BROKEN_FP32_NOISE, False),
    ):
        bundle, _block = make_variant_bundle(
            root / f"{name}.ekb", priv, fp32_noise=noise, per_variant=per_variant
        )
        dest = root / name
        out[name] = (dest, extract_bundle(bundle, dest, pub))
    return out


def _fp32_mae(dest: Path, manifest: Manifest) -> float:
    from edge.runtime import Predictor, compare, load_golden, run_golden

    golden = load_golden(dest, manifest)
    with Predictor.open(dest, manifest, "onnxruntime", "fp32") as p:
        return compare(run_golden(p, golden["inputs"]), golden["outputs"])[0]


def test_each_variant_carries_its_own_measured_tolerance(
    variant_bundles: dict[str, tuple[Path, Manifest]],
) -> None:
    _dest, manifest = variant_bundles["honest"]
    assert manifest.golden is not None
    shared = manifest.golden.tolerance["max_mean_abs_error"]
    own = {a.target: a.tolerance for a in manifest.artifacts}
    fp32, int8 = own["onnxruntime-fp32"], own["onnxruntime-int8"]
    assert fp32 is not None and int8 is not None
    assert fp32["max_mean_abs_error"] == 0.005  # measured 0.000: the floor
    assert int8["max_mean_abs_error"] == shared > 0.05  # the int8 needs the slack
    assert variant_bundles["broken_old_style"][1].artifacts[0].tolerance is None


def test_honest_variants_both_pass(variant_bundles: dict[str, tuple[Path, Manifest]]) -> None:
    report = self_test(*variant_bundles["honest"], time_budget=0.1)
    assert {v.target: v.status for v in report.variants} == {
        "onnxruntime-fp32": "ok",
        "onnxruntime-int8": "ok",
    }


def test_broken_fp32_fails_its_own_tolerance(
    variant_bundles: dict[str, tuple[Path, Manifest]],
) -> None:
    dest, manifest = variant_bundles["broken"]
    mae = _fp32_mae(dest, manifest)
    assert manifest.golden is not None
    # the premise: well above its own tolerance, below the shared (int8-sized) one
    assert 2 * 0.005 < mae < manifest.golden.tolerance["max_mean_abs_error"]
    report = self_test(dest, manifest, time_budget=0.1)
    fp32 = next(v for v in report.variants if v.target == "onnxruntime-fp32")
    assert fp32.status == "dropped" and fp32.max_mean_abs_error == 0.005
    assert fp32.reason is not None and "(max 0.005)" in fp32.reason
    assert report.chosen is not None and report.chosen.target == "onnxruntime-int8"
    with pytest.raises(SelfTestError, match="onnxruntime-fp32: outside tolerance"):
        self_test(dest, manifest, pin_precision="fp32", time_budget=0.1)


def test_golden_check_judges_the_served_variant_by_its_own_tolerance(
    variant_bundles: dict[str, tuple[Path, Manifest]],
) -> None:
    from edge.runtime import Predictor, golden_check

    dest, manifest = variant_bundles["broken"]
    with (
        Predictor.open(dest, manifest, "onnxruntime", "fp32") as p,
        pytest.raises(SelfTestError, match=r"exceeds 0\.005"),
    ):
        golden_check(p, per_sample=True)
    with Predictor.open(dest, manifest, "onnxruntime", "int8") as p:
        assert golden_check(p, per_sample=True)["max_mean_abs_error"] > 0.05


def test_bundle_without_per_variant_tolerance_uses_the_shared_one(
    variant_bundles: dict[str, tuple[Path, Manifest]],
) -> None:
    """Bundles built before the per-variant field keep today's behaviour (the hole the
    per-variant tolerance closes: the broken fp32 hides behind the int8's slack)."""
    report = self_test(*variant_bundles["broken_old_style"], time_budget=0.1)
    assert all(v.status == "ok" for v in report.variants)


def test_threads_are_part_of_the_variant(extracted: tuple[Path, Manifest]) -> None:
    """Each passing variant is timed at every thread count the device offers (1 and 2 on
    two CPUs); the fastest count is the variant's, and the install serves it with it."""
    from edge.install.policy import Policy
    from edge.install.recovery import self_test_and_open
    from edge.runtime.selftest import thread_options

    dest, manifest = extracted
    options = thread_options()
    assert options == list(range(1, len(options) + 1)) and 1 <= len(options) <= 2
    assert thread_options(3) == [3]
    report = self_test(dest, manifest, pin_runtime="onnxruntime", time_budget=0.4)
    for v in report.variants:
        if v.status == "ok":
            timings = v.latency_by_threads or {}
            assert sorted(timings) == [str(t) for t in options]
            assert v.threads is not None and v.latency_ms == timings[str(v.threads)]
            assert v.latency_ms == min(timings.values())
    chosen = report.chosen
    assert chosen is not None and chosen.runtime == "onnxruntime" and chosen.threads in options
    assert next(v for v in report.to_dict()["variants"] if v["status"] == "ok")["threads"]
    pinned = self_test(dest, manifest, pin_runtime="litert", pin_threads=1, time_budget=0.2)
    assert pinned.chosen is not None and pinned.chosen.threads == 1
    assert all(v.latency_by_threads in (None, {"1": v.latency_ms}) for v in pinned.variants)

    saved: dict[str, object] = {}

    def save(meta: dict[str, object]) -> object:
        from edge.bundle import Slot

        saved.update(meta)
        return Slot(manifest.name, manifest.version, dest.parent, dict(meta))

    policy = Policy(trusted_key=None, allow_unsigned=True, pin_runtime="openvino",
                    pin_threads=1, selftest_time_budget=0.2)  # fmt: skip
    served = self_test_and_open(dest, manifest, policy, save)  # type: ignore[arg-type]
    try:
        assert saved["variant"]["threads"] == 1  # type: ignore[index]
        assert served.predictor.variant.threads == 1 and served.ref().threads == 1
        assert served.ref().runtime == "openvino"
    finally:
        served.close()
