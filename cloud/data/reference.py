"""Reference statistics for on-device drift detection (``reference.json``, interfaces.md).

Inputs: one histogram per feature (tabular) or per channel (images) of the model-domain
values of the train split. Outputs: the predicted-class mix and a histogram of the top-1
confidence on the validation split. Bin edges come from quantiles of the reference data,
so each bin holds about the same share and PSI is sensitive where the data actually lies;
devices count live values into the *same* edges, clipping values outside them into the
first/last bin (see :func:`histogram`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

SCHEMA = "edgekit.reference/1"
DEFAULT_BINS = 10
MAX_VALUES = 1_000_000  # subsample very large image sets for the quantiles (deterministic)


def quantile_edges(values: np.ndarray, bins: int = DEFAULT_BINS) -> list[float]:
    """Up to ``bins + 1`` strictly increasing edges at the quantiles of ``values``.

    Repeated quantiles (e.g. many zero pixels) merge, so a bin is never empty by
    construction; a constant input gets a single unit-wide bin around its value.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size > MAX_VALUES:
        v = v[:: int(np.ceil(v.size / MAX_VALUES))]
    edges = np.unique(np.quantile(v, np.linspace(0.0, 1.0, bins + 1)))
    if edges.size < 2:
        c = float(edges[0]) if edges.size else 0.0
        edges = np.asarray([c - 0.5, c + 0.5])
    return [float(e) for e in edges]


def histogram(values: np.ndarray, edges: list[float]) -> list[int]:
    """Counts of ``values`` in the bins of ``edges``; out-of-range values go to the end bins.

    This is the counting rule the device must use for PSI against this reference.
    """
    e = np.asarray(edges, dtype=np.float64)
    v = np.clip(np.asarray(values, dtype=np.float64).ravel(), e[0], e[-1])
    counts, _ = np.histogram(v, bins=e)
    return [int(c) for c in counts]


def input_reference(
    x_train: np.ndarray, kind: str, names: list[str], bins: int = DEFAULT_BINS
) -> dict[str, Any]:
    """Per-feature or per-channel histograms of model-domain train inputs."""
    if kind == "image":
        columns = [x_train[..., c] for c in range(x_train.shape[-1])]
        granularity = "channel"
    else:
        columns = [x_train[:, i] for i in range(x_train.shape[1])]
        granularity = "feature"
    hists = []
    for col in columns:
        edges = quantile_edges(col, bins)
        hists.append({"edges": edges, "counts": histogram(col, edges)})
    return {"granularity": granularity, "names": list(names), "histograms": hists}


def output_reference(
    scores: np.ndarray, labels: list[str], bins: int = DEFAULT_BINS
) -> dict[str, Any]:
    """Predicted-class shares and a top-1 confidence histogram (edges span [0, 1])."""
    pred = np.argmax(scores, axis=1)
    conf = np.max(scores, axis=1)
    mix = np.bincount(pred, minlength=len(labels)) / max(1, len(pred))
    inner = [e for e in quantile_edges(conf, bins)[1:-1] if 0.0 < e < 1.0]
    edges = [0.0, *inner, 1.0]
    return {
        "labels": list(labels),
        "class_mix": [float(s) for s in mix],
        "confidence": {"edges": edges, "counts": histogram(conf, edges)},
    }


def build_reference(
    x_train: np.ndarray,
    kind: str,
    input_names: list[str],
    val_scores: np.ndarray,
    labels: list[str],
    bins: int = DEFAULT_BINS,
) -> dict[str, Any]:
    """The whole ``reference.json`` document."""
    return {
        "schema": SCHEMA,
        "inputs": input_reference(x_train, kind, input_names, bins),
        "outputs": output_reference(val_scores, labels, bins),
        "n": len(x_train),
        "n_outputs": len(val_scores),
    }
