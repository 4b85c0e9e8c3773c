"""Deploy steps as plain functions: download, verify, self-test, probation verdicts."""

from __future__ import annotations

import hashlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.bundle import ModelStore
from edge.contract import Command
from edge.errors import InstallError
from edge.install import Policy, allowed_origins, download
from edge.install.steps import (
    check_command,
    confidence_baseline,
    error_rate_lower_bound,
    judge_probation,
    run_self_test,
    verify,
)
from tests.bundles import make_bundle
from tests.edge.agent_helpers import FileServer

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from cloud.keys import generate_keypair

    root = tmp_path_factory.mktemp("kit")
    priv, pub = generate_keypair(root / "keys")
    other_priv, other_pub = generate_keypair(root / "other")
    return {
        "priv": priv,
        "pub": pub,
        "other_pub": other_pub,
        "v1": make_bundle(root / "d1.ekb", priv, version=1),
        "v2": make_bundle(root / "d2.ekb", priv, version=2, seed=2),
        "bad_golden": make_bundle(root / "bg.ekb", priv, version=3, bad_golden=True),
        "foreign": make_bundle(root / "f.ekb", other_priv, version=4),
    }


@pytest.fixture
def server() -> Iterator[FileServer]:
    srv = FileServer(token="tok")
    yield srv
    srv.close()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- download


def test_download_with_token(kit: dict[str, Path], server: FileServer, tmp_path: Path) -> None:
    url = server.add(kit["v1"])
    size = kit["v1"].stat().st_size
    out = download(
        url, tmp_path / "b.ekb", max_bytes=10**8, timeout=30, token="tok", expected_size=size
    )
    assert sha(out) == sha(kit["v1"])
    assert server.requests[0]["auth"] == "Bearer tok"
    assert not (tmp_path / "b.ekb.part").exists()


def test_download_resumes_with_range(
    kit: dict[str, Path], server: FileServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the module, not the face's download() that shares its name
    monkeypatch.setattr(sys.modules["edge.install.download"], "RETRY_BASE_S", 0.01)
    url = server.add(kit["v1"])
    size = kit["v1"].stat().st_size
    server.cut_after = size // 3  # every response breaks off after a third
    out = download(
        url, tmp_path / "b.ekb", max_bytes=10**8, timeout=30, token="tok", expected_size=size
    )
    assert sha(out) == sha(kit["v1"])
    ranges = [r["range"] for r in server.requests]
    assert ranges[0] is None and all(r and r.startswith("bytes=") for r in ranges[1:])


def test_download_continues_a_part_file(
    kit: dict[str, Path], server: FileServer, tmp_path: Path
) -> None:
    url = server.add(kit["v1"])
    data = kit["v1"].read_bytes()
    (tmp_path / "b.ekb.part").write_bytes(data[:100])  # left by a killed agent
    out = download(
        url, tmp_path / "b.ekb", max_bytes=10**8, timeout=30, token="tok", expected_size=len(data)
    )
    assert out.read_bytes() == data
    assert server.requests[0]["range"] == f"bytes=100-{len(data) - 1}"


@pytest.mark.parametrize(("token", "match"), [("wrong", "HTTP 401"), ("tok", "HTTP 404")])
def test_download_refusals(server: FileServer, tmp_path: Path, token: str, match: str) -> None:
    url = f"http://127.0.0.1:{server.port}/bundles/none.ekb"
    with pytest.raises(InstallError, match=match):
        download(url, tmp_path / "x.ekb", max_bytes=10**8, timeout=10, token=token, expected_size=9)


def test_download_bounded_size(kit: dict[str, Path], server: FileServer, tmp_path: Path) -> None:
    url = server.add(kit["v1"])
    with pytest.raises(InstallError, match="unbounded"):
        download(url, tmp_path / "b.ekb", max_bytes=100, timeout=10, expected_size=None)
    with pytest.raises(InstallError, match="byte limit"):
        download(
            url, tmp_path / "b.ekb", max_bytes=10**8, timeout=10, token="tok", expected_size=10**9
        )
    assert not (tmp_path / "b.ekb.part").exists()


def test_download_refuses_other_schemes(tmp_path: Path) -> None:
    with pytest.raises(InstallError, match="not http"):
        download("file:///etc/passwd", tmp_path / "x", max_bytes=10, timeout=1, expected_size=5)


def test_download_unreachable_times_out(tmp_path: Path) -> None:
    from tests.edge.brokers import free_port

    t0 = time.monotonic()
    with pytest.raises(InstallError, match="download"):
        download(f"http://127.0.0.1:{free_port()}/x", tmp_path / "x", max_bytes=10, timeout=0.5,
                 expected_size=5)  # fmt: skip
    assert time.monotonic() - t0 < 10


# ----------------------------------------------------------------------------- verify


def policy(kit: dict[str, Path], **kw: object) -> Policy:
    return Policy(trusted_key=kit["pub"], selftest_time_budget=0.2, **kw)  # type: ignore[arg-type]


def test_verify_accepts_good_bundle(kit: dict[str, Path], tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    staging, manifest = verify(
        kit["v1"], store, policy(kit), sha256=sha(kit["v1"]), name="digits", version=1
    )
    assert manifest.version == 1 and (staging / "bundle" / "manifest.json").exists()


def test_verify_refusals(kit: dict[str, Path], tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    copy = tmp_path / "copy.ekb"
    copy.write_bytes(kit["v1"].read_bytes())
    with pytest.raises(InstallError, match="sha256 mismatch") as err:
        verify(copy, store, policy(kit), sha256="0" * 64, name=None, version=1)
    assert err.value.step == "verifying" and not copy.exists()  # corrupt file not resumed
    with pytest.raises(InstallError, match="signature does not verify"):
        verify(kit["foreign"], store, policy(kit), sha256=None, name=None, version=None)
    with pytest.raises(InstallError, match="command says 7"):
        verify(kit["v1"], store, policy(kit), sha256=None, name=None, version=7)
    with pytest.raises(InstallError, match="command says 'other'"):
        verify(kit["v1"], store, policy(kit), sha256=None, name="other", version=None)
    with pytest.raises(InstallError, match="no trusted key"):
        verify(kit["v1"], store, Policy(trusted_key=None), sha256=None, name=None, version=None)
    assert not [p for p in store.root.iterdir() if p.name.startswith(".staging")]


def test_verify_version_rule(kit: dict[str, Path], tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    staging, m = verify(kit["v2"], store, policy(kit), sha256=None, name=None, version=None)
    store.commit(store.add_slot(staging, m.name, m.version, {}))
    with pytest.raises(InstallError, match="not newer"):
        verify(kit["v1"], store, policy(kit), sha256=None, name=None, version=None)
    staging, m = verify(
        kit["v1"], store, policy(kit), sha256=None, name=None, version=None, rollback=True
    )
    assert m.version == 1


def test_unsigned_allowed_only_when_configured(kit: dict[str, Path], tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    _staging, m = verify(kit["foreign"], store, Policy(trusted_key=None, allow_unsigned=True),
                         sha256=None, name=None, version=None)  # fmt: skip
    assert m.version == 4


# ----------------------------------------------------------------------------- commands


def test_check_command_expired_older_and_across_names(kit: dict[str, Path], tmp_path: Path) -> None:
    now = time.time()
    origin = "http://hub.example:8080"
    pol = Policy(trusted_key=None, origins=allowed_origins([origin]))
    store = ModelStore(tmp_path / "models")

    def deploy(name: str | None, version: int, **kw: Any) -> Command:
        fields: dict[str, Any] = {"url": f"{origin}/b", "sha256": "0" * 64, "size": 10,
                                  "expires": now + 60, **kw}  # fmt: skip
        return Command(id="c", kind="deploy", ts=now, name=name, version=version, **fields)

    with pytest.raises(InstallError, match="expired"):
        check_command(deploy("digits", 5, expires=now - 10), now, store, pol)
    with pytest.raises(InstallError, match="names no model"):
        check_command(deploy(None, 5), now, store, pol)
    with pytest.raises(InstallError, match="not the hub's"):
        check_command(deploy("digits", 5, url="http://evil.example:8080/b"), now, store, pol)
    with pytest.raises(InstallError, match="byte limit"):
        check_command(deploy("digits", 5, size=10**12), now, store, pol)
    staging, m = verify(kit["v2"], store, policy(kit), sha256=None, name=None, version=None)
    store.commit(store.add_slot(staging, m.name, m.version, {"bundle_sha256": sha(kit["v2"])}))
    with pytest.raises(InstallError, match="not newer"):
        check_command(deploy("digits", 2), now, store, pol)
    check_command(deploy("digits", 3), now, store, pol)
    check_command(deploy("other", 1), now, store, pol)  # another model: its own versions
    assert store.committed_versions("digits") == {2: sha(kit["v2"])}


# ----------------------------------------------------------------------------- self-test


def test_self_test_measures_and_chooses(kit: dict[str, Path], tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    staging, m = verify(kit["v1"], store, policy(kit), sha256=None, name=None, version=None)
    report = run_self_test(staging / "bundle", m, policy(kit))
    assert report.chosen is not None and report.chosen.target == "onnxruntime-fp32"
    v = report.variants[0]
    assert v.status == "ok" and v.latency_ms and v.latency_ms > 0 and v.runs >= 5
    assert v.top1_agreement == 1.0 and v.mean_abs_error is not None and v.mean_abs_error < 1e-5


def test_self_test_failure(kit: dict[str, Path], tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    staging, m = verify(kit["bad_golden"], store, policy(kit), sha256=None, name=None, version=None)
    with pytest.raises(InstallError, match="outside tolerance") as err:
        run_self_test(staging / "bundle", m, policy(kit))
    assert err.value.step == "self_test"


def test_self_test_pin_not_available(kit: dict[str, Path], tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    staging, m = verify(kit["v1"], store, policy(kit), sha256=None, name=None, version=None)
    with pytest.raises(InstallError, match="pinned variant litert"):
        run_self_test(staging / "bundle", m, policy(kit, pin_runtime="litert"))


# ----------------------------------------------------------------------------- probation


def health(**kw: object) -> dict[str, object]:
    base = {
        "inferences": 100,
        "errors": 0,
        "error_rate": 0.0,
        "p95_ms": 1.0,
        "confidence_mean": 0.9,
    }
    return {**base, **kw}


def judge(h: dict[str, object], *, selftest: float = 1.0, baseline: float | None = None,
          final: bool = False, latency: float | None = None,
          **policy_kw: Any) -> str | None:  # fmt: skip
    pol = Policy(trusted_key=None, **policy_kw)
    return judge_probation(
        h, pol, selftest_latency_ms=selftest, baseline_confidence=baseline, final=final,
        baseline_latency_ms=latency,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("h", "kw", "expect"),
    [
        (health(), {}, None),
        (health(errors=10, error_rate=10 / 110), {}, "error rate"),
        (health(errors=1, error_rate=1 / 5, inferences=4), {}, None),  # too few to judge
        (health(errors=1, error_rate=1 / 10, inferences=9), {}, None),  # one glitch in ten
        (health(errors=2, error_rate=2 / 10, inferences=8), {}, "error rate"),
        (
            health(errors=10, error_rate=1.0, inferences=0, p95_ms=None, confidence_mean=None),
            {},
            "error rate",
        ),
        (health(p95_ms=50.0), {}, "p95 latency"),
        # like with like: on this busy device 45 ms p95 is expected live, so 50 ms is fine
        # although the bare self-test said 1 ms ...
        (health(p95_ms=50.0), {"latency": 45.0}, None),
        # ... and 200 ms is not
        (health(p95_ms=200.0), {"latency": 45.0}, "the expected"),
        (health(confidence_mean=0.5), {"baseline": 0.9}, "confidence"),
        (health(confidence_mean=0.75), {"baseline": 0.9}, None),
        (
            health(inferences=0, p95_ms=None, confidence_mean=None),
            {"final": True, "probation_min_inferences": 5},
            "only 0",
        ),
        # no inferences at all and no minimum: only errors could have failed it
        (health(inferences=0, p95_ms=None, confidence_mean=None), {"final": True}, None),
    ],
)
def test_judge_probation(h: dict[str, object], kw: dict[str, Any], expect: str | None) -> None:
    reason = judge(h, **kw)
    if expect is None:
        assert reason is None
    else:
        assert reason is not None and expect in reason


@pytest.mark.parametrize(
    ("selftest", "p95", "fails"),
    [
        (0.05, 5.5, False),  # tiny model on a busy CPU: 110x slower, but only 5.45 ms
        (0.3, 1.2, False),  # MLP -> CNN successor: 4x slower, under a millisecond more
        (10.0, 25.0, False),  # 15 ms slower, but only 2.5x
        (10.0, 29.9, False),  # both close to, neither over: 2.99x and 19.9 ms
        (5.0, 20.0, True),  # 4x and 15 ms slower
        (0.5, 11.0, True),  # 22x and 10.5 ms slower
    ],
)
def test_latency_needs_ratio_and_increase(selftest: float, p95: float, fails: bool) -> None:
    reason = judge(health(p95_ms=p95), selftest=selftest)
    assert (reason is not None) == fails
    if fails:
        assert reason is not None and "p95 latency" in reason


def test_latency_increase_is_configurable() -> None:
    h = health(p95_ms=5.5)
    assert judge(h, selftest=0.05) is None
    reason = judge(h, selftest=0.05, probation_min_latency_increase_ms=2.0)
    assert reason is not None and "limit 2 ms" in reason


@pytest.mark.parametrize("inferences", [1, 10, 19])
def test_latency_and_confidence_need_enough_samples(inferences: int) -> None:
    slow = health(inferences=inferences, p95_ms=500.0)
    unsure = health(inferences=inferences, confidence_mean=0.1)
    assert judge(slow) is None
    assert judge(unsure, baseline=0.9) is None
    assert judge(health(inferences=20, p95_ms=500.0)) is not None


def test_probation_min_inferences_raises_the_sample_floor() -> None:
    slow = health(inferences=40, p95_ms=500.0)
    assert judge(slow, probation_min_inferences=50) is None
    assert judge(slow, probation_min_inferences=30) is not None
    assert "only 40" in str(judge(health(inferences=40), final=True, probation_min_inferences=50))


def test_confidence_baseline_needs_enough_samples() -> None:
    pol = Policy(trusted_key=None)
    assert confidence_baseline(health(inferences=5, confidence_mean=0.9), pol) is None
    assert confidence_baseline(health(inferences=0, confidence_mean=None), pol) is None
    assert confidence_baseline(health(inferences=20, confidence_mean=0.9), pol) == 0.9


@pytest.mark.parametrize(
    ("errors", "total", "low", "high"),
    [(0, 10, 0.0, 0.0), (1, 10, 0.0, 0.05), (2, 10, 0.05, 0.2), (10, 10, 0.7, 1.0)],
)
def test_error_rate_lower_bound(errors: int, total: int, low: float, high: float) -> None:
    assert low <= error_rate_lower_bound(errors, total) <= high
    assert error_rate_lower_bound(errors, total) <= errors / total


def test_the_latency_baseline_scales_the_new_self_test_by_the_old_models_live_ratio() -> None:
    from edge.install.steps import latency_baseline

    pol = Policy(trusted_key=None)
    # the old model: 2 ms in its self-test, 8 ms p95 live (serving path + a busy device);
    # a successor that self-tests at 10 ms should show ~40 ms live, not ~8 ms
    assert latency_baseline(health(p95_ms=8.0), pol, 2.0, 10.0) == pytest.approx(40.0)
    assert latency_baseline(health(p95_ms=8.0, inferences=5), pol, 2.0, 10.0) is None  # few
    assert latency_baseline(health(p95_ms=None), pol, 2.0, 10.0) is None
    assert latency_baseline(health(p95_ms=8.0), pol, None, 10.0) is None  # nothing to scale
