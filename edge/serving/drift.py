"""Drift statistics: the Population Stability Index against a bundle's reference.json.

PSI = Σ (a_i − e_i) · ln(a_i / e_i) over histogram bins, with ``a`` the live shares and ``e``
the reference shares, both floored at ``EPSILON`` so empty bins stay finite. Standard reading
(credit-scoring practice, also used by most ML monitoring tools): below 0.1 no meaningful
shift, 0.1–0.2 slight shift, above 0.2 significant shift (the default alert threshold).

Because PSI of a finite sample is biased upwards (about ``(k − 1) · (1/n + 1/m)`` for k
bins, n live and m reference samples, even without drift), a window needs ``min_samples``
observations before it reports; docs/mqtt-api.md gives the measured noise floor.

This module holds the statistics (histograms, PSI, the reference); what crosses a
threshold and what telemetry says about it is edge/serving/drift_watch.py.
"""

from __future__ import annotations

import json
import math
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ContractError

REFERENCE_SCHEMA = "edgekit.reference/1"
EPSILON = 1e-4
# Values per feature/channel binned from one input (a subsample, see InputDrift._subset). 256
# pixels per channel and image: a window of 1000 images still bins 256k values per
# channel, and pixels of one image are strongly correlated, so a denser grid adds little
# information but costs ~40 us more per inference (224x224x3, cold caches). The 256 are
# ``RUNS`` runs of 8 neighbouring pixels, evenly spread over the image (one run every 7
# rows of a 224x224 one), at an offset that moves by a run per input, so successive
# inputs cover every pixel. Runs, not 256 single strided pixels: one view and one copy,
# a cache line per run (measured: 2.8 us against 6.4 us strided, warm). PSI's sampling
# noise is set by the window (1000 inputs x 256 = 256k values per channel, against
# 10-20 bins): far below the 0.2 alert threshold (tests/edge/serving/test_monitor.py).
MAX_ROWS = 256
RUNS = 32
PENDING_BATCH = 32  # inputs binned together, warm (see InputDrift.add)


def psi(actual: np.ndarray, expected: np.ndarray, eps: float = EPSILON) -> float:
    """PSI between two count (or share) vectors of the same bins."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape or a.sum() <= 0 or e.sum() <= 0:
        raise ValueError("psi needs two non-empty histograms of the same bins")
    a = np.maximum(a / a.sum(), eps)
    e = np.maximum(e / e.sum(), eps)
    return float(np.sum((a - e) * np.log(a / e)))


def psi_rows(actual: np.ndarray, expected: np.ndarray, eps: float = EPSILON) -> np.ndarray:
    """PSI of each row of two count matrices of the same bins (one numpy pass for every
    feature); NaN where a row of ``actual`` is empty. Bins padded with zeros in both
    (features with fewer bins) contribute nothing: both shares are floored to ``eps``."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    a_sum = a.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.maximum(a / a_sum, eps)
        e = np.maximum(e / e.sum(axis=1, keepdims=True), eps)
        out = np.sum((a - e) * np.log(a / e), axis=1)
    out[a_sum[:, 0] <= 0] = np.nan
    return out


def dimension_names(inputs_ref: dict[str, Any]) -> list[str]:
    """The reference's feature/channel names, or ``feature<i>``/``channel<i>`` without them."""
    names = inputs_ref.get("names")
    n = len(inputs_ref["histograms"])
    if isinstance(names, list) and len(names) == n and all(isinstance(x, str) for x in names):
        return list(names)
    return [f"{inputs_ref['granularity']}{i}" for i in range(n)]


def validate_reference(ref: Any, labels: list[str] | None = None) -> dict[str, Any]:
    """Check a reference.json document (interfaces.md); raise ContractError with the reason."""
    if not isinstance(ref, dict) or ref.get("schema") != REFERENCE_SCHEMA:
        raise ContractError(f"reference: 'schema' must be {REFERENCE_SCHEMA!r}")
    inputs, outputs = ref.get("inputs"), ref.get("outputs")
    if not isinstance(inputs, dict) or not isinstance(outputs, dict):
        raise ContractError("reference: 'inputs' and 'outputs' must be objects")
    if inputs.get("granularity") not in ("feature", "channel"):
        raise ContractError("reference: inputs.granularity must be 'feature' or 'channel'")
    hists = inputs.get("histograms")
    if not isinstance(hists, list) or not hists:
        raise ContractError("reference: inputs.histograms must be a non-empty list")
    for i, h in enumerate(hists):
        _check_hist(h, f"reference: inputs.histograms[{i}]")
    names = inputs.get("names")
    if names is not None and (
        not isinstance(names, list)
        or len(names) != len(hists)
        or not all(isinstance(x, str) and x for x in names)
    ):
        raise ContractError("reference: inputs.names must be one non-empty name per histogram")
    if outputs.get("confidence") is not None:
        _check_hist(outputs["confidence"], "reference: outputs.confidence")
    mix, ref_labels = outputs.get("class_mix"), outputs.get("labels")
    if not isinstance(ref_labels, list) or not isinstance(mix, list) or len(mix) != len(ref_labels):
        raise ContractError("reference: outputs.labels and outputs.class_mix must match in length")
    if not all(isinstance(v, (int, float)) and v >= 0 for v in mix) or sum(mix) <= 0:
        raise ContractError("reference: outputs.class_mix must be non-negative shares")
    if labels is not None and list(ref_labels) != list(labels):
        raise ContractError("reference: outputs.labels differ from the model's labels")
    return ref


def load_reference(path: Path, labels: list[str] | None = None) -> dict[str, Any]:
    """Read and validate a reference.json file."""
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContractError(f"reference {path} cannot be read: {exc}") from exc
    return validate_reference(obj, labels)


def _check_hist(h: Any, where: str) -> None:
    if not isinstance(h, dict):
        raise ContractError(f"{where} must be an object")
    edges, counts = h.get("edges"), h.get("counts")
    if not isinstance(edges, list) or not isinstance(counts, list) or len(counts) < 1:
        raise ContractError(f"{where}: 'edges' and 'counts' must be lists")
    if len(edges) != len(counts) + 1:
        raise ContractError(f"{where}: needs len(edges) == len(counts) + 1")
    e = np.asarray(edges, dtype=np.float64)
    if not np.all(np.isfinite(e)) or np.any(np.diff(e) < 0):
        raise ContractError(f"{where}: 'edges' must be finite and non-decreasing")
    if any((not isinstance(c, (int, float))) or c < 0 for c in counts) or sum(counts) <= 0:
        raise ContractError(f"{where}: 'counts' must be non-negative with a positive sum")


class InputDrift:
    """Per-feature (or per-channel) histograms of the last ``window`` inputs, binned on the
    reference edges (values outside fall into the first or last bin; NaN is ignored)."""

    def __init__(self, inputs_ref: dict[str, Any], window: int, min_samples: int) -> None:
        self.granularity: str = inputs_ref["granularity"]
        hists = inputs_ref["histograms"]
        self.n_dims = len(hists)
        self.k = np.array([len(h["counts"]) for h in hists])
        kmax = int(self.k.max())
        self.inner_edges = [np.asarray(h["edges"], dtype=np.float64)[1:-1] for h in hists]
        self.expected = np.zeros((self.n_dims, kmax))
        for j, h in enumerate(hists):
            self.expected[j, : self.k[j]] = h["counts"]
        self._totals = np.zeros((self.n_dims, kmax), dtype=np.int64)
        # inner edges padded with +inf so every row has kmax - 1 thresholds
        self.padded_edges = np.full((self.n_dims, max(kmax - 1, 0)), np.inf)
        for j, e in enumerate(self.inner_edges):
            self.padded_edges[j, : len(e)] = e
        self.row_offsets = np.arange(self.n_dims) * kmax
        # Images usually share one set of edges across channels: then one searchsorted
        # bins every channel at once.
        first = self.inner_edges[0]
        same = all(len(e) == len(first) and np.array_equal(e, first) for e in self.inner_edges)
        self.shared_edges: np.ndarray | None = first if same else None
        self.samples: deque[np.ndarray] = deque()
        self._pending: list[np.ndarray] = []  # inputs added, not binned yet (see add)
        self._phase = 0  # where the next input's subsample starts (see _subset)
        self.window = window
        self.min_samples = min_samples
        self.mismatches = 0

    @property
    def totals(self) -> np.ndarray:
        """Counts per feature/channel and bin over the window (pending inputs binned)."""
        self.flush()
        return self._totals

    def add(self, x: np.ndarray) -> bool:
        """Add one model input (any batch shape); False if its size does not fit.

        Large inputs (images) are binned on a subsample of ``MAX_ROWS`` pixels per channel
        (see :meth:`_subset`). This runs on every inference, next to the model's run, where
        the CPU caches are cold and each numpy call costs several us: so the subsample is
        only copied here (a strided slice: one call, no index array) and binned
        ``PENDING_BATCH`` inputs at a time, while the caches are warm (:meth:`flush`; the
        scores flush first)."""
        arr = x if type(x) is np.ndarray else np.asarray(x)
        size, dims = arr.size, self.n_dims
        if size == 0 or size % dims:
            self.mismatches += 1
            return False
        rows = size // dims  # NHWC: channels last; tabular: features last
        # a copy either way: the caller may reuse its array
        if rows > MAX_ROWS:
            self._pending.append(self._subset(arr, rows).copy())
        else:
            self._pending.append(arr.reshape(rows, dims).copy())
        if len(self._pending) >= PENDING_BATCH:
            self.flush()
        return True

    def _subset(self, arr: np.ndarray, rows: int) -> np.ndarray:
        """A view of the next input's subsample, ``(RUNS, MAX_ROWS // RUNS, dims)``: runs of
        neighbouring rows, one every ``rows // RUNS``, at an offset that moves by a run per
        input so successive inputs cover every row (a fixed one would bin the same pixels
        forever). The input was just prepared, so it is still in the cache."""
        run, period = MAX_ROWS // RUNS, rows // RUNS
        k = self._phase % -(-period // run)  # offsets 0, run, 2 run, ... cover the period
        self._phase = k + 1
        start = min(k * run, period - run)
        if period * RUNS == rows:
            grid = arr.reshape(RUNS, period, self.n_dims)
        else:  # the last rows % RUNS rows: reached by no run, a sliver of a large input
            grid = arr.reshape(rows, self.n_dims)[: period * RUNS].reshape(RUNS, period, -1)
        return grid[:, start : start + run]

    def flush(self) -> None:
        """Bin the inputs added since the last flush."""
        pending, self._pending = self._pending, []
        for cols in pending:
            self._bin(cols)

    def _bin(self, cols: np.ndarray) -> None:
        """Histogram counts of one input's rows (one ``searchsorted`` for all channels when
        they share edges, one ``bincount``); NaN/inf are looked for only when the sum is
        not finite."""
        cols = cols.reshape(-1, self.n_dims)  # a subsample comes as runs of rows
        if len(cols) > 8:  # many rows, few columns (images): searchsorted
            if self.shared_edges is not None:
                idx = self.shared_edges.searchsorted(cols, side="right")
            else:
                idx = np.empty(cols.shape, dtype=np.intp)
                for j, edges in enumerate(self.inner_edges):
                    idx[:, j] = edges.searchsorted(cols[:, j], side="right")
        else:  # few rows, maybe many features (tabular): one vectorised comparison
            # bin index = how many inner edges are <= the value (searchsorted side="right")
            idx = (cols[:, :, None] >= self.padded_edges[None, :, :]).sum(axis=2)
        idx += self.row_offsets
        # NaN/inf are not counted (a sum of finite values can overflow: then look closer)
        flat = idx.ravel() if math.isfinite(cols.sum()) else idx[np.isfinite(cols)]
        counts = np.bincount(flat, minlength=self._totals.size).reshape(self._totals.shape)
        self.samples.append(counts.astype(np.uint16) if len(flat) < 65536 else counts)
        self._totals += counts
        if len(self.samples) > self.window:
            self._totals -= self.samples.popleft()

    @property
    def ready(self) -> bool:
        """Whether ``min_samples`` inputs were seen (scores before that are noise)."""
        self.flush()
        return len(self.samples) >= self.min_samples

    def scores(self) -> np.ndarray:
        """PSI of every feature/channel over the window (NaN where no value was binned):
        one vectorised pass, run at snapshot time, never per inference."""
        self.flush()
        return psi_rows(self._totals, self.expected)

    def score(self) -> float | None:
        """Mean PSI over features/channels, or None before ``min_samples`` inputs."""
        if not self.ready:
            return None
        values = self.scores()
        values = values[np.isfinite(values)]
        return float(values.mean()) if values.size else None

    def per_dimension(self) -> list[float | None]:
        """PSI of each feature/channel (for diagnostics), None where no data yet."""
        return [None if math.isnan(v) else float(v) for v in self.scores().tolist()]


class OutputDrift:
    """Predicted-class mix of the last ``window`` predictions against the reference mix."""

    def __init__(self, class_mix: list[float], window: int, min_samples: int) -> None:
        self.expected = np.asarray(class_mix, dtype=np.float64)
        self.recent: deque[int] = deque(maxlen=window)
        self.min_samples = min_samples

    def add(self, predicted: int) -> None:
        self.recent.append(predicted)

    def score(self) -> float | None:
        if len(self.recent) < self.min_samples:
            return None
        counts = np.bincount(np.fromiter(self.recent, dtype=np.int64), minlength=len(self.expected))
        return psi(counts[: len(self.expected)], self.expected)


class ConfidenceDrift:
    """Top-1 confidence of the last ``window`` predictions against the reference's
    confidence histogram (``outputs.confidence``, of the float model on validation data).

    Reference bins narrower than ``resolution`` are merged with their upper neighbour:
    quantile edges of a confident model crowd just below 1.0 (0.99999, 0.9999997, ...),
    where a quantised or differently-compiled variant of the same model rounds its
    confidence across several of them without any change in the data. Differences below
    ``resolution`` (0.01 by default, at least twice the output quantisation step of an
    int8 variant) are not drift."""

    def __init__(
        self, confidence_ref: dict[str, Any], window: int, min_samples: int, resolution: float
    ) -> None:
        edges = [float(e) for e in confidence_ref["edges"]]
        counts = [float(c) for c in confidence_ref["counts"]]
        bins: list[list[float]] = []  # [lower edge, count], built from the top down
        upper, acc = edges[-1], 0.0
        for j in range(len(counts) - 1, -1, -1):
            acc += counts[j]
            if upper - edges[j] >= resolution:
                bins.append([edges[j], acc])
                upper, acc = edges[j], 0.0
        if not bins:
            bins.append([edges[0], acc])
        elif upper > edges[0]:  # a narrow remainder at the bottom joins the lowest bin
            bins[-1][0] = edges[0]
            bins[-1][1] += acc
        self.edges = np.asarray([b[0] for b in reversed(bins)] + [edges[-1]])
        self.expected = np.asarray([b[1] for b in reversed(bins)])
        self.recent: deque[float] = deque(maxlen=window)
        self.min_samples = min_samples

    def add(self, confidence: float) -> None:
        self.recent.append(confidence)

    def score(self) -> float | None:
        if len(self.recent) < self.min_samples:
            return None
        values = np.fromiter(self.recent, dtype=np.float64)
        idx = self.edges[1:-1].searchsorted(values, side="right")
        counts = np.bincount(idx, minlength=len(self.expected))
        return psi(counts, self.expected)
