"""One record per export target, from conversion through evaluation to the gate verdict.

A ``Variant`` never raises for its own failure: a converter crash or a runtime that will
not load the file is stored in ``error`` with the step that failed, so one broken target
is a row in the report and never stops the others.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cloud.export import split_target
from cloud.export.convert import Converted
from edge.contract import Artifact, FileEntry

METRIC_KEYS = (
    "accuracy",
    "agreement",
    "agreement_all",
    "agreement_inputs",
    "latency_ms",
    "latency_p95_ms",
    "size",
    "speedup_vs_fp32",
    "accuracy_drop_points",
    "recipe",  # int8: the recipe the exporter kept (cloud/export/recipes.py); else None
)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Variant:
    """A target's model file(s), measurements and whether it goes into the bundle."""

    target: str
    converted: Converted | None = None
    error: str | None = None
    failed_step: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    scores: np.ndarray | None = None  # test-split scores, for the card's disagreement count
    pred_all: np.ndarray | None = None  # top-1 on every agreement input, test rows first
    backend: dict[str, Any] = field(default_factory=dict)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    included: bool = False
    reason: str = ""
    gate: dict[str, Any] = field(default_factory=dict)  # the gate's checks and decision
    memory: dict[str, Any] = field(default_factory=dict)  # cloud/export/memory.py

    @property
    def runtime(self) -> str:
        return split_target(self.target)[0]

    @property
    def precision(self) -> str:
        return split_target(self.target)[1]

    @property
    def ok(self) -> bool:
        """Converted and evaluated without error (the gate may still leave it out)."""
        return self.error is None and self.converted is not None

    def fail(self, step: str, exc: BaseException, log_tail: str = "") -> None:
        detail = f"{type(exc).__name__}: {exc}".strip()
        if log_tail and log_tail not in detail:
            detail += f" [log: {log_tail.splitlines()[-1][:300]}]"
        self.error, self.failed_step = detail, step

    def artifact(self, root: Path) -> Artifact:
        """The manifest entry; paths are relative to the bundle root ``root``."""
        if self.converted is None:
            raise ValueError(f"{self.target} has no model file")
        c = self.converted
        companions = [
            FileEntry(p.relative_to(root).as_posix(), sha256_file(p), p.stat().st_size)
            for p in c.companions
        ]
        return Artifact(
            file=c.path.relative_to(root).as_posix(),
            runtime=self.runtime,
            precision=self.precision,
            sha256=sha256_file(c.path),
            size=c.path.stat().st_size,
            metrics={k: self.metrics.get(k) for k in METRIC_KEYS},
            inputs=list(c.inputs),
            outputs=list(c.outputs),
            companions=companions,
        )

    def row(self) -> dict[str, Any]:
        """The variant-table row for report.json and the model card (JSON-ready)."""
        c = self.converted
        return {
            "target": self.target,
            "runtime": self.runtime,
            "precision": self.precision,
            "included": self.included,
            "reason": self.reason,
            "gate": self.gate,
            **{k: self.metrics.get(k) for k in METRIC_KEYS},
            "error": self.error,
            "failed_step": self.failed_step,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "backend": self.backend,
            "memory": self.memory,
            "inputs": [t.to_dict() for t in c.inputs] if c else [],
            "outputs": [t.to_dict() for t in c.outputs] if c else [],
            "details": c.details if c else {},
            "candidates": self.candidates,
        }
