"""The agent with the checked-in reference bundles (models/*.ekb, signed with the dev key):
offline provisioning with ``bundle``, then real inputs over (in-memory) MQTT.

Inputs come from scikit-learn's bundled datasets, the ones the bundles were trained on
(see scripts/build_reference_models), so the right label is known.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge import contract as c
from edge.agent import Agent, config
from edge.messaging import MemoryBroker, MemoryTransport
from edge.runtime import prepare
from tests.waiting import wait_for

MODELS = Path(__file__).resolve().parents[3] / "models"
DEV = "ref-1"
SAMPLES = 20

pytestmark = pytest.mark.skipif(
    not (MODELS / "digits.ekb").exists()
    or not (MODELS / "tabular.ekb").exists()
    or not (MODELS / "dev-signing.pub").exists(),
    reason=f"reference bundles not in {MODELS} yet (scripts/build_reference_models)",
)


class Client:
    """An MQTT client on the agent's in-memory broker that sends requests and waits."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.transport = MemoryTransport(broker, "client")
        self.transport.connect()
        self.responses: dict[str, dict[str, Any]] = {}
        self.transport.subscribe(c.topic(DEV, c.INFER_RES), self._on_response)

    def _on_response(self, _topic: str, payload: bytes) -> None:
        res = json.loads(payload)
        self.responses[res["id"]] = res

    def infer(self, rid: str, inputs: Any) -> dict[str, Any]:
        body = json.dumps({"id": rid, "inputs": inputs}).encode()
        self.transport.publish(c.topic(DEV, c.INFER_REQ), body, qos=1)
        return wait_for(lambda: self.responses.get(rid), 20)


@pytest.fixture
def provisioned(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[Agent, Client]]:
    bundle = MODELS / f"{request.param}.ekb"
    cfg = config.load(
        {"device_id": DEV, "data_dir": str(tmp_path / "data"), "bundle": str(bundle),
         "trusted_key": str(MODELS / "dev-signing.pub"), "selftest_time_budget": "0.3",
         "telemetry_interval": "3600"},
        environ={},
    )  # fmt: skip
    broker = MemoryBroker()
    agent = Agent(cfg, MemoryTransport(broker, DEV))
    agent.start()
    try:
        yield agent, Client(broker)
    finally:
        agent.stop()


def check_served(agent: Agent, name: str) -> None:
    model = agent.server.current
    assert model is not None, "the bundle was not provisioned"
    assert model.manifest.name == name and model.version == 1
    assert agent.store.last_known_good() is not None  # provisioning commits at once


@pytest.mark.parametrize("provisioned", ["digits"], indirect=True)
def test_digits_bundle_answers_real_digit_images(provisioned: tuple[Agent, Client]) -> None:
    datasets = pytest.importorskip("sklearn.datasets", reason="needs scikit-learn's digits")
    agent, client = provisioned
    check_served(agent, "digits")
    digits = datasets.load_digits()
    rng = np.random.default_rng(0)
    picks = rng.choice(len(digits.images), SAMPLES, replace=False)
    right = 0
    for i in picks:
        image = digits.images[i].tolist()  # 8x8 raw values 0..16, as a camera client sends
        res = client.infer(f"d{i}", image)
        assert "error" not in res, res
        assert res["version"] == 1 and len(res["scores"]) == 10 and res["latency_ms"] > 0
        right += res["label"] == str(digits.target[i])
    assert right >= 0.9 * SAMPLES, f"only {right} of {SAMPLES} digits recognised"
    assert client.infer("short", [1.0, 2.0, 3.0])["error"]["code"] == "shape"
    assert client.infer("hot", [[100.0] * 8] * 8)["error"]["code"] == "range"
    assert client.infer("again", digits.images[0].tolist())["label"] in map(str, range(10))


@pytest.mark.parametrize("provisioned", ["tabular"], indirect=True)
def test_tabular_bundle_answers_named_features(provisioned: tuple[Agent, Client]) -> None:
    datasets = pytest.importorskip("sklearn.datasets", reason="needs scikit-learn's breast cancer")
    agent, client = provisioned
    check_served(agent, "tabular")
    data = datasets.load_breast_cancer()
    names = [n.replace(" ", "_") for n in data.feature_names]  # as the bundle was trained
    model = agent.server.current
    assert model is not None and names == model.manifest.preprocessing["features"]
    rng = np.random.default_rng(0)
    picks = rng.choice(len(data.data), SAMPLES, replace=False)
    right = 0
    for i in picks:
        order = rng.permutation(len(names))  # named fields in any order are reordered
        row = {names[j]: float(data.data[i][j]) for j in order}
        res = client.infer(f"t{i}", row)
        assert "error" not in res, res
        right += res["label"] == str(data.target_names[data.target[i]])
    assert right >= 0.9 * SAMPLES, f"only {right} of {SAMPLES} samples classified right"
    row = {n: float(v) for n, v in zip(names, data.data[0], strict=True)}
    missing = {k: v for k, v in row.items() if k != "mean_radius"}
    assert client.infer("missing", missing)["error"]["code"] == "missing_field"
    assert client.infer("extra", {**row, "age": 50.0})["error"]["code"] == "extra_field"
    assert client.infer("again", row)["label"] in ("benign", "malignant")


@pytest.fixture
def pinned(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Agent]:
    cfg = config.load(
        {"device_id": DEV, "data_dir": str(tmp_path / "data"),
         "bundle": str(MODELS / "digits.ekb"), "trusted_key": str(MODELS / "dev-signing.pub"),
         "pin_runtime": "litert", "pin_precision": request.param,
         "telemetry_interval": "3600"},
        environ={},
    )  # fmt: skip
    agent = Agent(cfg, MemoryTransport(MemoryBroker(), DEV))
    agent.start()
    try:
        yield agent
    finally:
        agent.stop()


@pytest.mark.parametrize("pinned", ["fp32"], indirect=True)
def test_arrays_are_prepared_straight_into_the_litert_input(pinned: Agent) -> None:
    """The direct path (a float LiteRT input filled in place) answers exactly like the
    generic one, feeds drift, and leaves rejections to the generic checks."""
    from edge.errors import InputError

    datasets = pytest.importorskip("sklearn.datasets", reason="needs scikit-learn's digits")
    agent = pinned
    model = agent.server.current
    assert model is not None and model.direct
    images = datasets.load_digits().images[:40]
    drift = agent.monitor._input_drift
    assert drift is not None
    before = int(drift.totals.sum())
    for image in images:
        direct = agent.predict(image.astype(np.float32)[:, :, None])  # fits: filled in place
        generic = agent.predict(image.tolist())  # a list: prepared, then copied in
        assert direct.scores == generic.scores and direct.label == generic.label
    frame = agent.predict(images[0].astype(np.uint8)[:, :, None])  # camera-style uint8
    assert frame.label == agent.predict(images[0].tolist()).label
    assert int(drift.totals.sum()) > before  # both paths feed input drift
    for bad, code in ((np.full((8, 8, 1), 99.0, np.float32), "range"),
                      (np.full((8, 8, 1), np.nan, np.float32), "nan")):  # fmt: skip
        with pytest.raises(InputError) as info:
            agent.predict(bad)
        assert info.value.code == code
    rejected = agent.monitor.snapshot()["rejected_inputs"]
    assert rejected.get("range") == 1 and rejected.get("nan") == 1


@pytest.mark.parametrize("pinned", ["int8"], indirect=True)
def test_a_quantised_input_is_quantised_straight_into_the_tensor(pinned: Agent) -> None:
    """int8 LiteRT takes the direct path too: the agent's answer equals the runtime's
    generic set_tensor call on the same quantised input."""
    model = pinned.server.current
    assert model is not None and model.direct
    datasets = pytest.importorskip("sklearn.datasets", reason="needs scikit-learn's digits")
    image = datasets.load_digits().images[3].astype(np.float32)[:, :, None]
    direct = pinned.predict(image)
    x = prepare(model.predictor.manifest, image)
    generic = model.predictor.backend.infer_generic(x)  # type: ignore[attr-defined]
    assert direct.index == int(np.argmax(generic[0]))
    np.testing.assert_allclose(direct.scores, generic[0], rtol=0, atol=1e-6)
