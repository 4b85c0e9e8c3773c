"""Shadow as a rollout setting: the spec's ``shadow``, the deploy orders that carry it, and
the gate that fails a wave when a device's shadow run agreed too rarely."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from cloud.hub.rollout import RolloutError
from cloud.hub.rollout.core import RolloutSpec
from cloud.hub.rollout.core.machine import Order, act, advance
from cloud.hub.rollout.core.shadow_gate import SHADOW_GATE
from cloud.hub.rollout.core.state import DeviceObservation, ShadowReport, StepReport
from edge.contract import ShadowSettings
from tests.cloud.hub.fleet import SimDevice, deliver, observations
from tests.cloud.hub.rollout.test_rollout import run, spec, started

SHADOW = {"inputs": 20, "min_agreement": 0.9, "timeout": 30}


@dataclass
class ShadowDevice(SimDevice):
    """Obeys a deploy as an agent does when the order carries ``shadow``: reports its shadow
    run (``agreement`` on the order's inputs), and refuses the candidate under the minimum
    unless ``enforces`` is off (an agent that reports but does not judge)."""

    agreement: float = 1.0
    seen: int | None = None  # inputs the shadow run saw (default: all it was asked for)
    enforces: bool = True
    shadow: ShadowReport | None = None

    def obey(self, order: Order) -> None:
        if order.kind == "deploy" and order.shadow is not None:
            n = order.shadow.inputs if self.seen is None else self.seen
            self.shadow = ShadowReport(
                order.command_id, n, self.agreement if n else None, order.shadow.inputs, 0,
                {"p50": 1.5, "p95": 2.5}, {"p50": 1.0, "p95": 2.0},
            )  # fmt: skip
            if n and self.enforces and self.agreement < order.shadow.min_agreement:
                self.history.append(order)
                reason = f"shadow failed: agreement {self.agreement:.3f} below"
                self.step = StepReport("failed", order.command_id, order.version, reason)
                return
        super().obey(order)

    def observe(self) -> DeviceObservation:
        o = super().observe()
        return DeviceObservation(
            o.id, o.online, o.tags, o.model, o.kpis, o.step, incompatible=o.incompatible,
            shadow=self.shadow,
        )  # fmt: skip


def devices(*agreements: float, **kw: object) -> list[ShadowDevice]:
    return [ShadowDevice(f"d{i:02d}", agreement=a, **kw) for i, a in enumerate(agreements)]  # type: ignore[arg-type]


def shadow_gate_of(r: object) -> dict:
    return next(g for g in r.gates if g["metric"] == SHADOW_GATE)  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- spec


def test_shadow_is_off_by_default_and_round_trips() -> None:
    assert spec().shadow is None and spec().to_dict()["shadow"] is None
    s = spec(shadow=SHADOW)
    assert s.shadow == ShadowSettings(20, 0.9, 30.0)
    assert RolloutSpec.parse(s.to_dict()) == s
    assert spec(shadow={"inputs": 5}).shadow == ShadowSettings(5, 0.0, 120.0)
    assert spec(shadow=None).shadow is None


@pytest.mark.parametrize(
    "shadow, message",
    [
        ({"inputs": 0}, "'inputs' must be an integer from 1"),
        ({"inputs": True}, "'inputs' must be an integer"),
        ({"min_agreement": 0.9}, "'inputs' must be an integer"),
        ({"inputs": 5, "min_agreement": 1.5}, "'min_agreement' must be a number from 0 to 1"),
        ({"inputs": 5, "min_agreement": float("nan")}, "'min_agreement'"),
        ({"inputs": 5, "timeout": 0.5}, "'timeout' must be a number from 1"),
        ({"inputs": 5, "agreement": 0.9}, "unknown field(s) agreement"),
        ([20], "must be an object"),
        ({"inputs": 5, "timeout": 900}, "must be shorter than deploy_timeout_s (900 s)"),
    ],
)
def test_bad_shadow_settings_are_refused_clearly(shadow: object, message: str) -> None:
    with pytest.raises(RolloutError) as exc:
        spec(shadow=shadow)
    assert message in str(exc.value)


# --------------------------------------------------------------------------- orders


def test_deploy_orders_carry_the_rollouts_shadow_and_rollbacks_do_not() -> None:
    fleet = devices(1.0, 1.0)
    r = started(spec(waves=[100], shadow=SHADOW))
    r, orders = advance(r, observations(fleet), 1.0)  # type: ignore[arg-type]
    assert [o.shadow for o in orders] == [ShadowSettings(20, 0.9, 30.0)] * 2
    r, rollback = act(r, "rollback", 2.0, observations=observations(fleet))  # type: ignore[arg-type]
    assert rollback and all(o.shadow is None for o in rollback)
    _r, plain = advance(started(spec(waves=[100])), observations(fleet), 1.0)  # type: ignore[arg-type]
    assert plain and all(o.shadow is None for o in plain)


# --------------------------------------------------------------------------- the gate


def test_agreeing_devices_pass_the_gate_and_the_reports_are_kept() -> None:
    fleet = devices(1.0, 0.95, 0.9, 1.0)
    r = started(spec(waves=[50, 100], soak_seconds=0, shadow=SHADOW))
    r, _orders, _t = run(r, fleet, 1.0, 8)  # type: ignore[arg-type]
    assert r.state == "completed", r.audit[-1]
    gate = shadow_gate_of(r)
    assert gate["ok"] is True and gate["devices"] == 4 and gate["value"] == 0.9
    assert gate["threshold"] == 0.9 and gate["inferences"] == 80 and gate["under"] == []
    shadow = r.deployments["d01"].shadow
    assert shadow is not None and shadow["agreement"] == 0.95 and shadow["inputs"] == 20
    assert shadow["candidate_latency_ms"] == {"p50": 1.5, "p95": 2.5}
    assert shadow["served_latency_ms"] == {"p50": 1.0, "p95": 2.0}


@pytest.mark.parametrize("action, final", [("pause", "paused"), ("rollback", "rolled_back")])
def test_a_device_under_the_minimum_stops_the_rollout(action: str, final: str) -> None:
    """Two waves: the first wave's disagreeing device stops it before the second is sent,
    with the device's agreement as the reason (not the generic error threshold's)."""
    fleet = devices(1.0, 0.4, 1.0, 1.0)
    r = started(spec(waves=[50, 100], soak_seconds=0, error_action=action, shadow=SHADOW))
    r, all_orders, _t = run(r, fleet, 1.0, 6)  # type: ignore[arg-type]
    assert r.state == final
    assert r.audit[-1].action == f"auto_{action}"
    assert r.audit[-1].reason == (
        "shadow gate: d01 agreed with the served model on 40.0% of 20 inputs, under the "
        "minimum 90.0%, candidate p95 2.5 ms"
    )
    sent = {o.device for _w, orders in all_orders for o in orders if o.kind == "deploy"}
    assert sent == {"d00", "d01"}  # the second wave never went out
    gate = shadow_gate_of(r)
    assert gate["ok"] is False and gate["under"] == ["d01"] and gate["value"] == 0.4
    d01 = r.deployments["d01"]
    assert d01.reason.startswith("device reported failure: shadow failed: agreement 0.400")
    assert d01.status == ("failed" if action == "pause" else "reverted")  # never switched
    if action == "rollback":  # d00 committed the candidate: it is sent back
        rollbacks = [o.device for _w, orders in all_orders for o in orders if o.kind == "rollback"]
        assert rollbacks == ["d00"]


def test_the_hub_gates_even_when_the_agent_committed_the_candidate() -> None:
    """An agent that reports its agreement but does not judge it (its own minimum lower)
    committed: the hub's gate still fails the wave; error_threshold would not have."""
    fleet = devices(0.5, 1.0, enforces=False)
    r = started(spec(waves=[100], soak_seconds=0, error_threshold=0.9, shadow=SHADOW))
    r, _orders, _t = run(r, fleet, 1.0, 4)  # type: ignore[arg-type]
    assert r.state == "paused" and r.deployments["d00"].status == "committed"
    assert r.audit[-1].reason.startswith("shadow gate: d00 agreed with the served model on 50.0%")


def test_several_devices_under_it_are_counted_and_the_worst_named() -> None:
    fleet = devices(0.7, 0.2, 1.0)
    r = started(spec(waves=[100], soak_seconds=0, shadow=SHADOW))
    r, _orders, _t = run(r, fleet, 1.0, 3)  # type: ignore[arg-type]
    assert r.audit[-1].reason.startswith("shadow gate: d01 agreed")
    assert r.audit[-1].reason.endswith("; 2 devices under it")
    assert shadow_gate_of(r)["under"] == ["d00", "d01"]


def test_a_device_that_saw_no_input_is_recorded_but_not_judged() -> None:
    fleet = devices(0.0, 0.0, seen=0)
    r = started(spec(waves=[100], soak_seconds=0, shadow=SHADOW))
    r, _orders, _t = run(r, fleet, 1.0, 4)  # type: ignore[arg-type]
    assert r.state == "completed", r.audit[-1]
    gate = shadow_gate_of(r)
    assert gate["ok"] is None and gate["devices"] == 0
    assert r.deployments["d00"].shadow == {
        "inputs": 0, "wanted": 20, "agreement": None, "errors": 0,
        "candidate_latency_ms": {"p50": 1.5, "p95": 2.5},
        "served_latency_ms": {"p50": 1.0, "p95": 2.0},
    }  # fmt: skip


def test_a_report_for_another_command_is_ignored() -> None:
    """A shadow run answering an older command (an earlier attempt) is not this deploy's."""
    fleet = devices(1.0)
    fleet[0].shadow = ShadowReport("r1-old", 20, 0.1, 20)
    r = started(spec(waves=[100], soak_seconds=0, shadow=SHADOW))
    r, orders = advance(r, observations(fleet), 1.0)  # type: ignore[arg-type]
    assert r.state == "running" and r.deployments["d00"].shadow is None
    deliver(fleet, orders)  # type: ignore[arg-type]
    r, _ = advance(r, observations(fleet), 2.0)  # type: ignore[arg-type]
    assert r.deployments["d00"].shadow is not None
    assert r.deployments["d00"].shadow["agreement"] == 1.0


def test_retry_forgets_the_failed_shadow_run() -> None:
    fleet = devices(0.3, 1.0)
    r = started(spec(waves=[100], soak_seconds=0, shadow=SHADOW))
    r, _orders, t = run(r, fleet, 1.0, 3)  # type: ignore[arg-type]
    assert r.state == "paused"
    fleet[0].agreement = 0.99  # e.g. its traffic changed, or the operator fixed the inputs
    r, _ = act(r, "retry", t)
    assert r.deployments["d00"].shadow is None
    r, _ = act(r, "resume", t)
    r, _orders, _t = run(r, fleet, t + 1, 4)  # type: ignore[arg-type]
    assert r.state == "completed", r.audit[-1]
    assert r.deployments["d00"].shadow["agreement"] == 0.99  # type: ignore[index]


def test_without_shadow_no_gate_entry_appears() -> None:
    fleet = devices(0.1, 0.1)
    r = started(spec(waves=[100], soak_seconds=0))
    r, _orders, _t = run(r, fleet, 1.0, 4)  # type: ignore[arg-type]
    assert r.state == "completed"
    assert all(g["metric"] != SHADOW_GATE for g in r.gates)
