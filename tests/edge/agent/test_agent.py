"""The agent end to end on the in-memory broker: status, inference, every deploy path."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge import contract as c
from edge.agent import Agent, config
from edge.bundle import Slot
from edge.errors import InputError
from edge.install.states import STEPS
from edge.messaging import MemoryBroker, MemoryTransport
from edge.serving import InferenceTimeoutError
from tests.bundles import raw_digit
from tests.commands import command, write_hub_key
from tests.edge.agent_helpers import FileServer
from tests.edge.agent_kit import kit_fixture  # noqa: F401 - pytest fixture "kit"
from tests.waiting import wait_for

DEV = "dev-1"
ZEROS = [[0.0] * 8 for _ in range(8)]


class Rig:
    """An agent on a MemoryBroker, a client on the same broker, and a bundle server."""

    def __init__(self, tmp: Path, bundles: dict[str, Path], **settings: Any) -> None:
        self.tmp, self.kit = tmp, bundles
        self.broker = MemoryBroker()
        self.client = MemoryTransport(self.broker, "client")
        self.client.connect()
        self.responses: list[dict[str, Any]] = []
        self.client.subscribe(
            c.topic(DEV, c.INFER_RES), lambda _t, p: self.responses.append(json.loads(p))
        )
        self.files = FileServer(token="dev-token")
        base = {
            "device_id": DEV,
            "data_dir": str(tmp / "data"),
            "trusted_key": str(bundles["pub"]),
            "probation_seconds": "0.5",
            "selftest_time_budget": "0.2",
            "telemetry_interval": "3600",
            "command_keys": str(write_hub_key(tmp)),
        }
        self.settings = {**base, **settings}
        self.agent: Agent | None = None
        (tmp / "data").mkdir(exist_ok=True)
        (tmp / "data" / "credentials.json").write_text(
            json.dumps({"token": "dev-token", "hub": f"http://127.0.0.1:{self.files.port}"})
        )

    def start(self, **overrides: Any) -> Agent:
        cfg = config.load({**self.settings, **overrides}, environ={})
        self.agent = Agent(cfg, MemoryTransport(self.broker, DEV))
        self.agent.start()
        return self.agent

    def stop(self, graceful: bool = True) -> None:
        if self.agent is not None:
            self.agent.stop(graceful=graceful)
            self.agent = None

    def status(self) -> dict[str, Any]:
        raw = self.broker.retained(c.topic(DEV, c.STATUS))
        assert raw is not None
        return json.loads(raw)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(m.payload) for m in self.broker.messages(c.topic(DEV, c.EVENTS))]

    def wait_event(
        self, step: str, kind: str | None = None, timeout: float = 30, command: str | None = None
    ) -> dict[str, Any]:
        """The first event of ``step`` (of ``kind``, answering ``command`` if given)."""

        def find() -> dict[str, Any] | None:
            for e in self.events():
                if (
                    e["step"] == step
                    and (kind is None or e["kind"] == kind)
                    and (command is None or e["command"] == command)
                ):
                    return e
            return None

        return wait_for(find, timeout)

    def command(self, kind: str, **fields: Any) -> str:
        """Publish a command signed by the hub's test key; returns its id."""
        cid = fields.pop("id", f"cmd-{time.monotonic_ns()}")
        cmd = command(kind, DEV, id=cid, **fields)
        self.client.publish(c.topic(DEV, c.CMD), json.dumps(cmd).encode(), qos=1)
        return cid

    def deploy(self, bundle: Path, version: int, **fields: Any) -> str:
        url = self.files.add(bundle)
        digest = hashlib.sha256(bundle.read_bytes()).hexdigest()
        fields = {"name": "digits", "version": version, "url": url, "sha256": digest,
                  "size": bundle.stat().st_size, "rollout": "r1",
                  "expires": time.time() + 300, **fields}  # fmt: skip
        return self.command("deploy", **fields)

    def infer(self, rid: Any, inputs: Any) -> dict[str, Any]:
        self.client.publish(
            c.topic(DEV, c.INFER_REQ), json.dumps({"id": rid, "inputs": inputs}).encode()
        )
        return wait_for(lambda: next((r for r in self.responses if r["id"] == rid), None))

    def close(self) -> None:
        self.stop()
        self.files.close()


@pytest.fixture
def rig(tmp_path: Path, kit: dict[str, Path]) -> Iterator[Rig]:
    r = Rig(tmp_path, kit)
    yield r
    r.close()


def sid(slot: Slot | None) -> str | None:
    return slot.id if slot is not None else None


def steps_of(events: list[dict[str, Any]], command: str) -> list[str]:
    return [e["step"] for e in events if e["command"] == command]


# ----------------------------------------------------------------------------- status


def test_status_retained_and_will(rig: Rig) -> None:
    rig.start(bundle=str(rig.kit["v1"]))
    status = rig.status()
    assert status["schema"] == c.SCHEMA_STATUS and status["state"] == "online"
    threads = status["model"].pop("threads")  # the self-test's fastest thread count
    assert status["model"] == {"name": "digits", "version": 1, "runtime": "onnxruntime",
                               "precision": "fp32"}  # fmt: skip
    served = rig.agent.server.current if rig.agent else None
    assert served is not None and threads in (1, 2) and threads == served.predictor.variant.threads
    caps = status["capabilities"]
    assert caps["cores"] >= 1 and caps["cpu"]["model"] and "onnxruntime" in caps["runtimes"]
    assert caps["runtimes"]["onnxruntime"]["available"] is True
    assert rig.agent is not None
    boot = rig.agent.boot
    rig.stop(graceful=False)  # like a crash: the broker publishes the will
    offline = rig.status()
    assert offline["state"] == "offline" and offline["boot"] == boot


def test_provisioning_events_and_restart_serves_same(rig: Rig) -> None:
    rig.start(bundle=str(rig.kit["v1"]))
    rig.wait_event("committed")
    assert [e["step"] for e in rig.events()] == [
        "verifying",
        "self_test",
        "activating",
        "committed",
    ]
    self_test = next(e for e in rig.events() if e["step"] == "self_test")
    variant = self_test["detail"]["selftest"]["variants"][0]
    assert variant["status"] == "ok" and variant["latency_ms"] > 0
    rig.stop()
    agent = rig.start()  # no --bundle: serves what it installed before
    assert agent.server.current is not None and agent.server.current.version == 1
    agent = agent
    rig.stop()
    rig.start(bundle=str(rig.kit["v1"]))  # same bundle again: nothing to do
    assert len([e for e in rig.events() if e["step"] == "committed"]) == 1


def test_no_model_waits_and_answers_errors(rig: Rig) -> None:
    rig.start()
    assert rig.status()["model"] is None
    res = rig.infer("a", raw_digit())
    assert res["error"]["code"] == "no_model"


# ----------------------------------------------------------------------------- inference


def test_request_response_and_in_process(rig: Rig) -> None:
    agent = rig.start(bundle=str(rig.kit["v1"]))
    res = rig.infer(42, raw_digit())
    assert res["schema"] == c.SCHEMA_INFER_RES and res["id"] == 42  # an integer, as sent
    assert res["label"] in [str(i) for i in range(10)] and len(res["scores"]) == 10
    assert res["version"] == 1 and res["latency_ms"] > 0
    pred = agent.predict(raw_digit())
    assert pred.label == res["label"]
    assert abs(sum(pred.scores) - 1) < 1e-4


@pytest.mark.parametrize("qos", [0, 1])
def test_replies_use_the_configured_qos(rig: Rig, qos: int) -> None:
    rig.start(bundle=str(rig.kit["v1"]), infer_response_qos=str(qos))
    rig.infer("q", raw_digit())
    sent = rig.broker.messages(c.topic(DEV, c.INFER_RES))
    assert sent and {m.qos for m in sent} == {qos}


def test_malformed_requests_counted_agent_keeps_serving(rig: Rig) -> None:
    agent = rig.start(bundle=str(rig.kit["v1"]))
    req = c.topic(DEV, c.INFER_REQ)
    rig.client.publish(req, b"\xff not json")
    rig.client.publish(req, b"[1, 2]")
    rig.client.publish(req, json.dumps({"inputs": raw_digit()}).encode())  # no id
    rig.client.publish(req, json.dumps({"id": "no-inputs"}).encode())
    rig.client.publish(req, json.dumps({"id": "short", "inputs": [1, 2, 3]}).encode())
    rig.client.publish(req, json.dumps({"id": "nan", "inputs": [[None] * 8] * 8}).encode())
    rig.client.publish(req, json.dumps({"id": "big", "inputs": [[99.0] * 8] * 8}).encode())
    rig.client.publish(req, json.dumps({"id": "batch", "inputs": [raw_digit()] * 2}).encode())
    assert rig.infer("ok", raw_digit())["label"]
    by_id = {r["id"]: r for r in rig.responses}
    assert by_id["no-inputs"]["error"]["code"] == "bad_request"
    assert by_id["short"]["error"]["code"] == "shape"
    assert by_id["big"]["error"]["code"] == "range"
    assert by_id["batch"]["error"]["code"] == "shape"
    assert "error" in by_id["nan"]
    agent.publish_telemetry()
    tel = wait_for(lambda: rig.broker.messages(c.topic(DEV, c.TELEMETRY)))
    metrics = json.loads(tel[-1].payload)
    assert metrics["schema"] == c.SCHEMA_TELEMETRY and metrics["seq"] == 0
    assert metrics["rejected_inputs"]["malformed"] == 3
    codes = [r["error"]["code"] for r in rig.responses if "error" in r and r["id"] != "no-inputs"]
    assert sum(metrics["rejected_inputs"].get(k, 0) for k in set(codes)) == len(codes) == 4
    assert metrics["rejected_inputs"]["range"] >= 1
    assert metrics["inferences"] == 1 and metrics["model"]["version"] == 1


def test_time_limit(rig: Rig) -> None:
    agent = rig.start(bundle=str(rig.kit["slow1"]), inference_timeout="0.005")
    with pytest.raises(InferenceTimeoutError):
        agent.predict(raw_digit())
    assert rig.infer("t", raw_digit())["error"]["code"] == "timeout"


def test_http_api(rig: Rig) -> None:
    agent = rig.start(bundle=str(rig.kit["v1"]), http_port="0")
    assert agent.http is not None
    url = agent.http.url

    def call(path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
        data = (
            None
            if body is None
            else (body if isinstance(body, bytes) else json.dumps(body).encode())
        )
        req = urllib.request.Request(url + path, data=data, method="POST" if data else "GET")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    code, body = call("/v1/predict", {"inputs": raw_digit()})
    assert code == 200 and body["version"] == 1 and len(body["scores"]) == 10
    assert call("/v1/predict", {"inputs": [1, 2]})[1]["error"]["code"] == "shape"
    assert call("/v1/predict", b"nope")[0] == 400
    assert call("/v1/status")[1]["model"]["version"] == 1
    assert call("/healthz") == (200, {"ok": True})
    assert call("/nope")[0] == 404
    assert agent.http.httpd.server_address[0] == "127.0.0.1"


# ----------------------------------------------------------------------------- deploys


def test_deploy_every_step_with_shadow(rig: Rig) -> None:
    agent = rig.start(bundle=str(rig.kit["v1"]), shadow_inputs="5")
    cid = rig.deploy(rig.kit["v2"], 2)
    stop = False

    def feed() -> None:
        while not stop:
            with contextlib.suppress(Exception):
                agent.predict(raw_digit(int(time.monotonic_ns() % 1000)))
            time.sleep(0.01)

    import threading

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        done = rig.wait_event("committed", timeout=60, command=cid)
    finally:
        stop = True
        t.join()
    assert done["command"] == cid and done["rollout"] == "r1" and done["version"] == 2
    # the agent walks the deploy table's steps, in the table's order
    assert steps_of(rig.events(), cid) == [step.name for step in STEPS] == [
        "downloading", "verifying", "self_test", "shadow", "activating", "probation", "committed",
    ]  # fmt: skip
    shadow = next(e for e in rig.events() if e["step"] == "shadow")
    assert shadow["detail"]["inputs"] == 5 and 0.0 <= shadow["detail"]["agreement"] <= 1.0
    assert rig.status()["model"]["version"] == 2
    lkg = agent.store.last_known_good()
    assert lkg is not None and lkg.version == 2
    assert rig.files.requests[-1]["auth"] == "Bearer dev-token"


@pytest.mark.parametrize(
    ("case", "match"),
    [
        ("bad_sha", "sha256 mismatch"),
        ("bad_signature", "signature does not verify"),
        ("older", "not newer"),
        ("self_test", "outside tolerance"),
    ],
)
def test_deploy_refusals(rig: Rig, case: str, match: str) -> None:
    rig.start(bundle=str(rig.kit["v2"] if case == "older" else rig.kit["v1"]))
    bundle, version, extra = rig.kit["v2"], 2, dict[str, Any]()
    if case == "bad_sha":
        extra = {"sha256": "ab" * 32}
    elif case == "bad_signature":
        bundle = rig.kit["foreign2"]
    elif case == "older":
        bundle, version = rig.kit["v1"], 1
    elif case == "self_test":
        bundle = rig.kit["bad_golden2"]
    cid = rig.deploy(bundle, version, **extra)
    failed = rig.wait_event("failed")
    assert failed["command"] == cid and failed["kind"] == "deploy"
    assert match in failed["detail"]["reason"]
    assert "activating" not in steps_of(rig.events(), cid)
    assert rig.agent is not None and rig.agent.server.current is not None
    assert rig.agent.server.current.version == (2 if case == "older" else 1)
    assert rig.infer("after", raw_digit())["label"]


def test_probation_failure_rolls_back(rig: Rig) -> None:
    agent = rig.start(bundle=str(rig.kit["v1"]), probation_seconds="20")
    cid = rig.deploy(rig.kit["nan2"], 2)
    wait_for(lambda: agent.server.current and agent.server.current.version == 2, 30)
    for _ in range(12):  # all-zero inputs make the nan model fail
        with contextlib.suppress(Exception):
            agent.predict(ZEROS)
    rolled = rig.wait_event("rolled_back", kind="rollback")
    assert rolled["command"] == cid and rolled["detail"]["failed_step"] == "probation"
    assert "error rate" in rolled["detail"]["reason"]
    assert rolled["detail"]["restored"] == "digits-1"
    assert rolled["detail"]["restored_version"] == 1 and rolled["version"] == 2
    assert rolled["detail"]["reason"] in rolled["message"]  # the hub shows it per device
    assert agent.server.current is not None and agent.server.current.version == 1
    wait_for(lambda: rig.status()["model"]["version"] == 1)
    assert sid(agent.store.active()) == "digits-1"


def test_error_rate_fallback_to_last_known_good(rig: Rig) -> None:
    agent = rig.start(
        bundle=str(rig.kit["v1"]), probation_seconds="0", fallback_min_inferences="5",
        fallback_error_rate="0.5",
    )  # fmt: skip
    cid = rig.deploy(rig.kit["nan2"], 2)
    rig.wait_event("committed", timeout=30, command=cid)
    assert agent.server.current is not None and agent.server.current.version == 2
    for _ in range(6):  # the committed v2 now fails on every input
        with pytest.raises(Exception):  # noqa: B017
            agent.predict(ZEROS)
    ev = rig.wait_event("rolled_back", kind="rollback", timeout=20)
    assert ev["detail"]["reason"] == "error_rate" and ev["detail"]["restored"] == "digits-1"
    assert ev["detail"]["restored_version"] == 1 and ev["detail"]["error_rate"] >= 0.5
    wait_for(lambda: agent.server.current is not None and agent.server.current.version == 1)
    assert agent.predict(raw_digit()).label
    assert sid(agent.store.active()) == sid(agent.store.last_known_good()) == "digits-1"
    wait_for(lambda: rig.status()["model"]["version"] == 1)


def test_commanded_rollback_and_unknown_version(rig: Rig) -> None:
    agent = rig.start(bundle=str(rig.kit["v1"]), probation_seconds="0")
    rig.wait_event("committed", command=rig.deploy(rig.kit["v2"], 2))
    cid = rig.command("rollback", name="digits", version=1)
    done = rig.wait_event("rolled_back", kind="rollback")
    assert done["command"] == cid and done["detail"]["reason"] == "commanded"
    assert done["detail"]["restored_version"] == 1
    assert agent.server.current is not None and agent.server.current.version == 1
    wait_for(lambda: rig.status()["model"]["version"] == 1)
    bad = rig.command("rollback", name="digits", version=7)
    failed = rig.wait_event("failed", kind="rollback")
    assert failed["command"] == bad and "never committed" in failed["detail"]["reason"]


def test_failed_rollback_download_leaves_no_journal(rig: Rig) -> None:
    # v1 is committed, then pruned by v2 (keep_versions=1): rolling back re-downloads it,
    # and the mirror serves other bytes than the sha256 the device recorded at commit
    agent = rig.start(bundle=str(rig.kit["v1"]), probation_seconds="0", keep_versions="1")
    rig.wait_event("committed", command=rig.deploy(rig.kit["v2"], 2))
    url = rig.files.add(rig.kit["v3"])
    v1_sha = hashlib.sha256(rig.kit["v1"].read_bytes()).hexdigest()
    size = rig.kit["v3"].stat().st_size
    cid = rig.command("rollback", name="digits", version=1, url=url, sha256=v1_sha, size=size)
    failed = rig.wait_event("failed", kind="rollback", command=cid)
    assert "sha256 mismatch" in failed["detail"]["reason"]
    assert agent.store.state.install is None
    assert agent.server.current is not None and agent.server.current.version == 2
    rig.stop()
    rig.start()  # a restart must not report the finished rollback as interrupted
    assert not any("interrupted" in e["message"] for e in rig.events())


def test_config_and_ping_commands(rig: Rig) -> None:
    agent = rig.start(bundle=str(rig.kit["v1"]))
    rig.command("config", config={"probation_seconds": 7, "inference_timeout": 2})
    wait_for(lambda: agent.cfg.probation_seconds == 7)
    assert agent.installer.policy.probation_seconds == 7 and agent.server.timeout == 2
    rig.command("config", config={"data_dir": "/tmp/evil"})
    err = wait_for(lambda: [e for e in rig.events() if e["kind"] == "error"])
    assert "cannot be changed remotely" in err[0]["message"]
    rig.command("config", config={"probation_seconds": -1})
    wait_for(lambda: len([e for e in rig.events() if e["kind"] == "error"]) == 2)
    pid = rig.command("ping")
    pong = wait_for(lambda: [e for e in rig.events() if e["command"] == pid])
    assert pong[0]["message"] == "pong"
    rig.client.publish(c.topic(DEV, c.CMD), b"{bad")
    wait_for(lambda: any("bad command" in e["message"] for e in rig.events()))


# ----------------------------------------------------------------------------- crash recovery


def test_restart_during_probation_rolls_back(rig: Rig) -> None:
    agent = rig.start(bundle=str(rig.kit["v1"]), probation_seconds="0")
    rig.wait_event("committed", command=rig.deploy(rig.kit["v2"], 2))
    rig.stop()
    # simulate a kill during probation of v3: journal says probation, pointer moved
    from edge.bundle import ModelStore

    store = ModelStore(rig.tmp / "data" / "models")
    v2 = store.active()
    assert v2 is not None
    store.begin_install({"command": "c3", "rollout": "r3", "version": 3, "step": "probation"})
    import shutil

    shutil.copytree(v2.path, store.root / "digits-3")
    meta = json.loads((store.root / "digits-3" / "slot.json").read_text())
    (store.root / "digits-3" / "slot.json").write_text(json.dumps({**meta, "version": 3}))
    v3 = store.find("digits", 3)
    assert v3 is not None
    store.activate(v3)
    agent = rig.start()
    assert agent.server.current is not None and agent.server.current.version == 2
    ev = rig.wait_event("rolled_back", kind="rollback")
    assert ev["command"] == "c3" and "restarted during probation" in ev["detail"]["reason"]
    assert rig.status()["model"]["version"] == 2


def test_restart_before_activation_reports_failed(rig: Rig) -> None:
    rig.start(bundle=str(rig.kit["v1"]))
    rig.stop()
    from edge.bundle import ModelStore

    store = ModelStore(rig.tmp / "data" / "models")
    store.begin_install({"command": "c9", "version": 2, "step": "self_test"})
    (store.root / ".staging-abc").mkdir()
    agent = rig.start()
    ev = rig.wait_event("failed")
    assert ev["command"] == "c9" and ev["detail"]["failed_step"] == "self_test"
    assert agent.server.current is not None and agent.server.current.version == 1
    assert not (store.root / ".staging-abc").exists()


def test_tampered_active_model_is_not_served(rig: Rig) -> None:
    rig.start(bundle=str(rig.kit["v1"]), probation_seconds="0")
    rig.wait_event("committed", command=rig.deploy(rig.kit["v2"], 2))
    rig.stop()
    model_file = next((rig.tmp / "data" / "models" / "digits-2" / "bundle" / "models").iterdir())
    model_file.write_bytes(model_file.read_bytes()[:-10])
    # v2 is LKG and active, so there is nothing verified to fall back to but v1 (pruned? no)
    agent = rig.start()
    current = agent.server.current
    assert current is None or current.version != 2
    assert any(
        "digits-2" in e["message"] or "digits-2" in json.dumps(e["detail"]) for e in rig.events()
    )


# ----------------------------------------------------------------------------- imports


def test_edge_only_imports() -> None:
    code = (
        "import sys, edge.agent.agent, edge.cli.agent\n"
        "bad = [m for m in ('tensorflow', 'keras', 'flask', 'cloud') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_input_error_is_edgekit_error(rig: Rig) -> None:
    agent = rig.start(bundle=str(rig.kit["v1"]))
    with pytest.raises(InputError) as err:
        agent.predict({"a": 1})
    assert err.value.code


# A new value for every key a ``config`` command may change, and where the agent's
# components read it. The probe reads the component, never ``agent.cfg``: a key that is
# accepted but never reaches its component fails here.
REMOTE_KEY_PROBES: dict[str, tuple[Any, Callable[[Agent], Any]]] = {
    "telemetry_interval": (42.0, lambda a: a.reporter.telemetry_interval()),
    "pin_runtime": ("onnxruntime", lambda a: a.installer.policy.pin_runtime),
    "pin_precision": ("int8", lambda a: a.installer.policy.pin_precision),
    "keep_versions": (1, lambda a: a.store.keep),
    "inference_timeout": (1.5, lambda a: a.server.timeout),
    "fallback_error_rate": (0.9, lambda a: a.server.fallback_error_rate),
    "fallback_window": (77, lambda a: a.server._outcomes.maxlen),
    "fallback_min_inferences": (33, lambda a: a.server.fallback_min_inferences),
    "selftest_time_budget": (0.7, lambda a: a.installer.policy.selftest_time_budget),
    "shadow_inputs": (9, lambda a: a.installer.policy.shadow_inputs),
    "shadow_timeout": (11.0, lambda a: a.installer.policy.shadow_timeout),
    "shadow_min_agreement": (0.5, lambda a: a.installer.policy.shadow_min_agreement),
    "probation_seconds": (7.0, lambda a: a.installer.policy.probation_seconds),
    "probation_min_inferences": (5, lambda a: a.installer.policy.probation_min_inferences),
    "probation_max_error_rate": (0.2, lambda a: a.installer.policy.probation_max_error_rate),
    "probation_max_latency_ratio": (
        4.0,
        lambda a: a.installer.policy.probation_max_latency_ratio,
    ),
    "probation_max_confidence_drop": (
        0.3,
        lambda a: a.installer.policy.probation_max_confidence_drop,
    ),
    "probation_min_latency_increase_ms": (
        12.0,
        lambda a: a.installer.policy.probation_min_latency_increase_ms,
    ),
    "replay_rate": (2.5, lambda a: a.replay.rate if a.replay else None),
    "drift_threshold": (0.25, lambda a: a.monitor.psi_threshold),
    "drift_feature_threshold": (0.45, lambda a: a.monitor.feature_threshold),
    "input_guard": ("refuse", lambda a: a.server.input_guard),
    "input_guard_margin": (0.5, lambda a: a.server.input_guard_margin),
    "capture": (
        {"enabled": True, "max_mb": 5.0},
        lambda a: {
            "enabled": a.server.sampler is a.capture,
            "max_mb": a.capture.store.max_bytes / (1 << 20),
        },
    ),
}


def test_every_remote_key_has_a_probe() -> None:
    assert set(REMOTE_KEY_PROBES) == set(config.RUNTIME_KEYS)


@pytest.mark.parametrize("key", sorted(REMOTE_KEY_PROBES))
def test_every_remote_key_reaches_its_component(rig: Rig, tmp_path: Path, key: str) -> None:
    replay = tmp_path / "replay.csv"
    replay.write_text("a\n1\n")
    agent = rig.start(replay=str(replay), replay_rate="1000", replay_loop="false")
    value, probe = REMOTE_KEY_PROBES[key]
    assert probe(agent) != value, "pick a probe value that differs from the default"
    cid = rig.command("config", config={key: value})
    wait_for(lambda: [e for e in rig.events() if e["command"] == cid])
    assert probe(agent) == value


def test_keep_versions_prunes_the_store_at_once(rig: Rig) -> None:
    agent = rig.start(bundle=str(rig.kit["v1"]), keep_versions="3")
    rig.deploy(rig.kit["v2"], 2)
    rig.wait_event("committed", command=None)
    wait_for(lambda: len(agent.store.slots()) == 2)
    cid = rig.command("config", config={"keep_versions": 1})
    wait_for(lambda: [e for e in rig.events() if e["command"] == cid])
    kept = {s.id for s in agent.store.slots()}
    # the active model and the last known good one are never pruned
    assert kept == {sid(agent.store.active()), sid(agent.store.last_known_good())} - {None}


def test_max_queued_requests_reaches_mqtt_inference(rig: Rig) -> None:
    agent = rig.start(max_queued_requests="7")
    assert agent.inference.max_pending == 7


def test_a_deploy_whose_sha256_is_a_path_writes_nothing_outside(rig: Rig, tmp_path: Path) -> None:
    agent = rig.start(bundle=str(rig.kit["v1"]))
    before = sorted(p for p in tmp_path.rglob("*"))
    url = rig.files.add(rig.kit["v2"])
    cid = rig.command("deploy", name="digits", version=2, url=url,
                      sha256="../../../escaped", expires=time.time() + 60)  # fmt: skip
    err = wait_for(lambda: [e for e in rig.events() if e["kind"] == "error"])
    assert "64 hexadecimal" in err[0]["message"]
    assert not any(e["command"] == cid and e["step"] == "downloading" for e in rig.events())
    created = sorted(p for p in tmp_path.rglob("*"))
    assert [p for p in created if p not in before and "escaped" in p.name] == []
    assert not (tmp_path.parent / "escaped.ekb").exists()
    assert sid(agent.store.active()) == "digits-1"
