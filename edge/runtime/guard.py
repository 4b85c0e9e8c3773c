"""Range guards for tabular inputs: values far outside anything the model was trained on.

A model answers every finite input: a standardised ``1e30`` gets a confident, meaningless
answer. The bundle's reference.json already holds each feature's training range: its
histogram edges are quantiles 0..1 of the model-domain train split, so ``edges[0]`` and
``edges[-1]`` are the train min and max (granularity ``feature``). A value is *out of
range* when it lies more than ``margin`` training spans beyond them::

    min - margin * (max - min)  <=  x  <=  max + margin * (max - min)

``DEFAULT_GUARD_MARGIN`` (0.25) keeps ordinary unseen values in (the train min/max of a
few hundred rows are not the population's), and flags values a quarter of the whole
training span past the extremes. Modes (agent config ``input_guard``, ``edgekit predict
--input-guard``): ``warn`` (default) serves the input, counts it per feature in telemetry
and warns; ``refuse`` answers InputError code ``range`` naming the feature; ``off``.

Only tabular models are guarded (image inputs are already checked against the manifest's
``raw_range``). The check is two vectorised comparisons on the prepared batch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.bundle import entry_path
from edge.contract import Manifest
from edge.errors import ConfigError, ContractError, InputError

GUARD_MODES = ("warn", "refuse", "off")
DEFAULT_GUARD_MODE = "warn"
DEFAULT_GUARD_MARGIN = 0.25
MAX_NAMED = 3  # features a message names before "and N more"


@dataclass(frozen=True, eq=False)
class FeatureRanges:
    """Per-feature training ranges of one tabular model (model domain), with what turns a
    model-domain value back into the user's units for messages (``raw = x * std + mean``)."""

    names: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def from_reference(cls, manifest: Manifest, reference: Any) -> FeatureRanges | None:
        """The ranges of a tabular model's reference document; None when the model is not
        tabular or the reference has no per-feature histograms. ContractError when the
        reference does not fit the model."""
        pre = manifest.preprocessing or {}
        inputs = reference.get("inputs") if isinstance(reference, dict) else None
        if pre.get("kind") != "tabular" or not isinstance(inputs, dict):
            return None
        if inputs.get("granularity") != "feature":
            return None
        hists = inputs.get("histograms")
        n = manifest.inputs[0].shape[-1] if manifest.inputs[0].shape else 0
        if not isinstance(hists, list) or len(hists) != n:
            got = len(hists) if isinstance(hists, list) else "no"
            raise ContractError(f"reference: {got} feature histograms for a model of {n} inputs")
        low, high = np.empty(n), np.empty(n)
        for j, h in enumerate(hists):
            edges = h.get("edges") if isinstance(h, dict) else None
            if not isinstance(edges, list) or len(edges) < 2:
                raise ContractError(f"reference: inputs.histograms[{j}] has no edges")
            try:
                low[j], high[j] = float(edges[0]), float(edges[-1])
            except (TypeError, ValueError):
                raise ContractError(
                    f"reference: inputs.histograms[{j}] edges are not numbers"
                ) from None
            if not (math.isfinite(low[j]) and math.isfinite(high[j])) or high[j] < low[j]:
                raise ContractError(f"reference: inputs.histograms[{j}] edges are not a range")
        names = cls._names(inputs.get("names"), pre.get("features"), n)
        mean = np.broadcast_to(np.asarray(pre.get("mean", 0.0), dtype=np.float64), (n,))
        std = np.broadcast_to(np.asarray(pre.get("std", 1.0), dtype=np.float64), (n,))
        std = np.where(std == 0, 1.0, std)
        return cls(tuple(names), low, high, mean.copy(), std)

    @staticmethod
    def _names(names: Any, features: Any, n: int) -> list[str]:
        """The reference's feature names, else the manifest's, else ``feature_<j>``."""
        for candidate in (names, features):
            if not isinstance(candidate, list) or len(candidate) != n:
                continue
            if all(isinstance(s, str) for s in candidate):
                return list(candidate)
        return [f"feature_{j}" for j in range(n)]

    @classmethod
    def for_bundle(cls, bundle_dir: Path, manifest: Manifest) -> FeatureRanges | None:
        """The ranges from an extracted bundle's reference.json (None without one)."""
        if manifest.reference is None or (manifest.preprocessing or {}).get("kind") != "tabular":
            return None
        path = entry_path(bundle_dir, manifest.reference)
        try:
            reference = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ContractError(f"reference {path.name} cannot be read: {exc}") from exc
        return cls.from_reference(manifest, reference)

    def raw(self, j: int, value: float) -> float:
        """Model-domain ``value`` of feature ``j`` in the user's units."""
        return float(value * self.std[j] + self.mean[j])


@dataclass(frozen=True, eq=False)
class RangeGuard:
    """:class:`FeatureRanges` with a mode and margin: which prepared values are out of range."""

    ranges: FeatureRanges
    mode: str = DEFAULT_GUARD_MODE
    margin: float = DEFAULT_GUARD_MARGIN
    _lo: np.ndarray = field(init=False, repr=False)
    _hi: np.ndarray = field(init=False, repr=False)

    @staticmethod
    def check_settings(mode: str, margin: float) -> None:
        """ConfigError unless ``mode`` is a guard mode and ``margin`` a finite number >= 0."""
        if mode not in GUARD_MODES:
            modes = ", ".join(GUARD_MODES)
            raise ConfigError(f"input guard: mode must be one of {modes}, got {mode!r}")
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 0:
            raise ConfigError(f"input guard: margin must be a number >= 0, got {margin!r}")
        if not math.isfinite(margin):
            raise ConfigError(f"input guard: margin must be finite, got {margin!r}")

    def __post_init__(self) -> None:
        self.check_settings(self.mode, self.margin)
        r = self.ranges
        slack = self.margin * (r.high - r.low)
        # float32 rounding of (x - mean) / std must not flag a training value itself
        eps = 1e-5 * np.maximum(1.0, np.maximum(np.abs(r.low), np.abs(r.high)))
        object.__setattr__(self, "_lo", (r.low - slack - eps).astype(np.float32))
        object.__setattr__(self, "_hi", (r.high + slack + eps).astype(np.float32))

    def outside(self, x: np.ndarray) -> np.ndarray | None:
        """Boolean mask (samples x features) of out-of-range values of a prepared batch,
        or None when every value is in range (the common case: two comparisons)."""
        if self.mode == "off" or x.ndim != 2 or x.shape[1] != len(self._lo):
            return None
        if bool((x >= self._lo).all()) and bool((x <= self._hi).all()):
            return None
        return (x < self._lo) | (x > self._hi)

    def flagged(self, mask: np.ndarray) -> list[str]:
        """Names of the features out of range in any sample of ``mask``."""
        return [self.ranges.names[j] for j in np.flatnonzero(mask.any(axis=0))]

    def describe(self, x: np.ndarray, mask: np.ndarray) -> str:
        """One line naming the first out-of-range value(s), in the user's units."""
        r = self.ranges
        rows, cols = np.nonzero(mask)
        parts = []
        for i, j in list(zip(rows.tolist(), cols.tolist(), strict=True))[:MAX_NAMED]:
            lo, hi = r.raw(j, r.low[j]), r.raw(j, r.high[j])
            span = self.margin * (hi - lo)
            where = f" (sample {i})" if x.shape[0] > 1 else ""
            parts.append(
                f"feature {r.names[j]!r} = {r.raw(j, x[i, j]):.4g}{where} is outside its "
                f"training range {lo:.4g}..{hi:.4g} (allowed {lo - span:.4g}..{hi + span:.4g})"
            )
        more = len(rows) - len(parts)
        return "; ".join(parts) + (f"; and {more} more value(s)" if more > 0 else "")

    @property
    def refuses(self) -> bool:
        return self.mode == "refuse"

    def check(self, x: np.ndarray) -> tuple[list[str], str | None]:
        """``(flagged feature names, message)`` for a prepared batch, ``([], None)`` when
        every value is in range. Never raises: see :meth:`enforce`."""
        mask = self.outside(x)
        if mask is None:
            return [], None
        return self.flagged(mask), self.describe(x, mask)

    def enforce(self, x: np.ndarray) -> str | None:
        """The warning for a prepared batch (None when in range); in ``refuse`` mode an
        out-of-range value is InputError code ``range`` with the same message."""
        _names, message = self.check(x)
        if message is not None and self.refuses:
            raise InputError("range", message)
        return message
