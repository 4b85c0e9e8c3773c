"""A rollout's shadow setting on the agent: the signed deploy command's ``shadow`` wins over
the agent's own shadow_* settings for that deploy, its ``shadow`` event carries agreement
and both models' latency percentiles, and a candidate under the minimum never serves."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge import contract as c
from edge.agent import Agent
from tests.bundles import make_bundle, raw_digit
from tests.edge.agent.test_agent import Rig, steps_of
from tests.edge.agent_kit import kit_fixture  # noqa: F401 - pytest fixture "kit"


@pytest.fixture(scope="module")
def candidates(kit: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """v2 bundles against the kit's v1 (seed 0): the same weights (agreement 1.0), and
    the same model with every answer moved one class on (agreement 0.0)."""
    root = tmp_path_factory.mktemp("shadow-kit")
    return {
        "same2": make_bundle(root / "same2.ekb", kit["priv"], version=2, seed=0),
        "shifted2": make_bundle(root / "shift2.ekb", kit["priv"], version=2, kind="shifted"),
    }


@pytest.fixture
def rig(tmp_path: Path, kit: dict[str, Path]) -> Iterator[Rig]:
    r = Rig(tmp_path, kit)
    yield r
    r.close()


class Feeder:
    """Live traffic for the shadow run: inferences until stopped."""

    def __init__(self, agent: Agent) -> None:
        self.agent, self.stop = agent, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self.stop.is_set():
            with contextlib.suppress(Exception):  # swapping models: a refusal is fine here
                self.agent.predict(raw_digit(i))
            i += 1
            self.stop.wait(0.005)

    def __enter__(self) -> Feeder:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join()


def test_the_commands_shadow_wins_over_the_local_policy(
    rig: Rig, candidates: dict[str, Path]
) -> None:
    """The agent's own policy shadows nothing (shadow_inputs 0); the command asks for 12."""
    agent = rig.start(bundle=str(rig.kit["v1"]))
    assert agent.installer.policy.shadow_inputs == 0
    with Feeder(agent):
        cid = rig.deploy(
            candidates["same2"], 2, shadow={"inputs": 12, "min_agreement": 0.9, "timeout": 60}
        )
        rig.wait_event("committed", timeout=60, command=cid)
    assert "shadow" in steps_of(rig.events(), cid)
    shadow = rig.wait_event("shadow", command=cid)
    d = shadow["detail"]
    assert d["inputs"] == 12 and d["wanted"] == 12 and d["agreement"] == 1.0
    assert d["min_agreement"] == 0.9 and d["errors"] == 0
    for key in ("candidate_latency_ms", "served_latency_ms"):
        assert set(d[key]) == {"p50", "p95"} and 0 < d[key]["p50"] <= d[key]["p95"]
    assert rig.status()["model"]["version"] == 2
    # the policy itself was not changed: the next deploy without shadow does not shadow
    assert agent.installer.policy.shadow_inputs == 0


def test_a_candidate_under_the_commands_minimum_is_refused_before_it_serves(
    rig: Rig, candidates: dict[str, Path]
) -> None:
    agent = rig.start(bundle=str(rig.kit["v1"]), shadow_min_agreement="0.0")
    with Feeder(agent):
        cid = rig.deploy(candidates["shifted2"], 2, shadow={"inputs": 10, "min_agreement": 0.5})
        failed = rig.wait_event("failed", timeout=60, command=cid)
    assert steps_of(rig.events(), cid) == [
        "downloading",
        "verifying",
        "self_test",
        "shadow",
        "failed",
    ]  # fmt: skip: never activated, so nothing to roll back
    shadow = rig.wait_event("shadow", command=cid)
    assert shadow["detail"]["agreement"] == 0.0 and shadow["detail"]["inputs"] == 10
    assert shadow["message"].startswith("shadow run finished: agreement 0.000 below 0.5")
    assert failed["detail"]["code"] == "shadow_disagreement"
    assert failed["detail"]["failed_step"] == "shadow"
    assert rig.status()["model"]["version"] == 1
    assert agent.server.current is not None and agent.server.current.slot.version == 1


def test_without_a_commands_shadow_the_local_policy_applies(
    rig: Rig, candidates: dict[str, Path]
) -> None:
    """An older hub's deploy (no ``shadow``): the agent's own settings, as before."""
    agent = rig.start(bundle=str(rig.kit["v1"]), shadow_inputs="4", shadow_min_agreement="0.5")
    assert agent.installer.shadow_settings(None) == c.ShadowSettings(4, 0.5, 120.0)
    ordered = c.ShadowSettings(9, 0.1, 5.0)
    assert agent.installer.shadow_settings(ordered) is ordered
    with Feeder(agent):
        cid = rig.deploy(candidates["shifted2"], 2)
        failed = rig.wait_event("failed", timeout=60, command=cid)
    assert failed["detail"]["code"] == "shadow_disagreement"
    assert rig.wait_event("shadow", command=cid)["detail"]["wanted"] == 4


def test_a_shadow_run_without_traffic_reports_no_agreement_and_goes_on(
    rig: Rig, candidates: dict[str, Path]
) -> None:
    rig.start(bundle=str(rig.kit["v1"]))
    cid = rig.deploy(candidates["shifted2"], 2, shadow={"inputs": 5, "min_agreement": 0.9,
                                                        "timeout": 1})  # fmt: skip
    rig.wait_event("committed", timeout=60, command=cid)
    d = rig.wait_event("shadow", command=cid)["detail"]
    assert d["inputs"] == 0 and d["agreement"] is None
    assert d["candidate_latency_ms"] is None and d["served_latency_ms"] is None
    assert d["wanted"] == 5  # the command's inputs, not the policy's (0: none)
