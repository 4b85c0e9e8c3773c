"""A content fingerprint of a dataset, recorded in lineage so a model names its data."""

from __future__ import annotations

import hashlib
import json

import numpy as np

from cloud.data.dataset import Dataset


def fingerprint(ds: Dataset) -> str:
    """``sha256:<hex>`` over a canonical form of the samples, labels and their names.

    Canonical: a JSON header (kind, shape, label names, feature names) followed by ``x`` as
    little-endian float32 and ``y`` as little-endian int64, both C-ordered. So the same data
    gives the same fingerprint whatever file format or dtype it arrived in, and any changed
    value, label, class name or sample order changes it (order matters because the split
    depends on it: same fingerprint + same seed => same split).
    """
    header = {
        "kind": ds.kind,
        "shape": list(ds.x.shape),
        "labels": ds.labels,
        "features": ds.feature_names,
    }
    h = hashlib.sha256()
    h.update(json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    h.update(b"\0")
    h.update(np.ascontiguousarray(ds.x, dtype="<f4").tobytes())
    h.update(np.ascontiguousarray(ds.y, dtype="<i8").tobytes())
    return "sha256:" + h.hexdigest()
