"""Capture on the device: keep the live inputs worth labeling and upload them to the hub.

This package's face: import every name from ``edge.capture``.

* :class:`CapturePolicy` (policy.py): agent config key ``capture``; off by default.
* :class:`Capture` (capture.py): the serving layer's sample hook (``ModelServer.sampler``)
  with the rate limit, the capture thread, the store and the uploader.
* :class:`SampleStore` (store.py): the bounded, durable queue on disk.
* :class:`Uploader` (uploader.py): HTTP batches to ``/api/v1/devices/<id>/samples``.

What leaves the device, and when, is described in docs/agent.md ("Capture").
"""

from edge.capture.capture import Capture
from edge.capture.encode import sample_input
from edge.capture.policy import CapturePolicy
from edge.capture.store import SampleStore
from edge.capture.uploader import Uploader, UploadPass, retry_after

__all__ = [
    "Capture",
    "CapturePolicy",
    "SampleStore",
    "UploadPass",
    "Uploader",
    "retry_after",
    "sample_input",
]
