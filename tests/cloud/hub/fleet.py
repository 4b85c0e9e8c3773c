"""A simulated fleet for rollout tests: devices that obey orders the way agents do and
report what they run (pure Python, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cloud.hub.rollout.core.machine import DeviceObservation, Kpis, Order, StepReport


@dataclass
class SimDevice:
    id: str
    tags: tuple[str, ...] = ("lab",)
    model: tuple[str, int] | None = ("digits", 1)
    online: bool = True
    fails: bool = False  # install of a new version fails
    p95: float = 1.0
    error_rate: float = 0.0
    inferences: int | None = 1000  # served on the version it runs (None: not counted)
    errors: int | None = None  # None: consistent with error_rate
    step: StepReport | None = None
    history: list[Order] = field(default_factory=list)
    incompatible: str | None = None  # what the hub's check of its capabilities says
    refuses: str | None = None  # the agent refuses deploys as incompatible, with this reason

    def obey(self, order: Order) -> None:
        self.history.append(order)
        if order.kind == "deploy" and self.refuses:
            self.step = StepReport(
                "failed", order.command_id, order.version, self.refuses, "incompatible"
            )
            return
        if order.kind == "deploy" and self.fails:
            self.step = StepReport("failed", order.command_id, order.version, "self-test failed")
            return
        self.model = (order.name, order.version)
        step = "committed" if order.kind == "deploy" else "rolled_back"
        self.step = StepReport(step, order.command_id, order.version)

    def observe(self) -> DeviceObservation:
        kpis = None
        errors = self.errors
        if errors is None and self.inferences is not None:
            errors = round(self.error_rate * self.inferences / (1 - min(self.error_rate, 0.99)))
        if self.model is not None:
            kpis = Kpis(
                self.model[0], self.model[1], self.error_rate, self.p95, 0.01, None,
                self.inferences, errors,
            )  # fmt: skip
        return DeviceObservation(
            self.id, self.online, self.tags, self.model, kpis, self.step,
            incompatible=self.incompatible,
        )  # fmt: skip


def observations(devices: list[SimDevice]) -> dict[str, DeviceObservation]:
    return {d.id: d.observe() for d in devices}


def deliver(devices: list[SimDevice], orders: list[Order]) -> None:
    by_id = {d.id: d for d in devices}
    for o in orders:
        by_id[o.device].obey(o)
