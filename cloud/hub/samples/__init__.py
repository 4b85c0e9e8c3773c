"""The hub's sample store: inputs devices captured (edge/capture/) and uploaded, the
operator's labels with their history, and retention.

Rows live in the ``samples`` and ``sample_labels`` tables, input files under
``<data dir>/samples/<device>/<id>.<png|npy|json>``. Routes (cloud/hub/http/sample_routes.py),
the retention worker and dataset versions (cloud/hub/datasets/) all go through this face;
:class:`SampleFilter` is the one way to say which samples are meant.
"""

from cloud.hub.samples.filters import FILTER_KEYS, SampleFilter, check_label
from cloud.hub.samples.labels import (
    MAX_IDS,
    LabelResult,
    check_ids,
    delete_samples,
    label_history,
    set_labels,
    summary,
)
from cloud.hub.samples.retention import RetentionResult, enforce_retention
from cloud.hub.samples.rows import (
    MEDIA_TYPES,
    SampleRow,
    count_samples,
    get_sample,
    query_samples,
    sample_file,
)
from cloud.hub.samples.store import RateLimited, check_input, store_batch

__all__ = [
    "FILTER_KEYS",
    "MAX_IDS",
    "MEDIA_TYPES",
    "LabelResult",
    "RateLimited",
    "RetentionResult",
    "SampleFilter",
    "SampleRow",
    "check_ids",
    "check_input",
    "check_label",
    "count_samples",
    "delete_samples",
    "enforce_retention",
    "get_sample",
    "label_history",
    "query_samples",
    "sample_file",
    "set_labels",
    "store_batch",
    "summary",
]
