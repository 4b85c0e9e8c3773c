"""Upload captured samples to the hub: HTTP batches with the device token, resumable.

``POST <hub>/api/v1/devices/<id>/samples`` with ``Authorization: Bearer <device token>``
and a batch document (edge/contract/samples.py), oldest samples first. Uploads are
idempotent by sample id, so resuming is simply sending again: a sample leaves the store
only once the hub named it ``accepted``, ``duplicates`` (stored before: an earlier answer
was lost) or ``rejected`` (it will never take it). Anything else keeps it for the next pass:

* no answer, 5xx, 401/403 (a revoked or wrong token): back off, doubling from the upload
  interval up to ``MAX_BACKOFF_S``, and try again; nothing is lost while the hub is away;
* 429: wait what ``Retry-After`` says (capped), then go on;
* 413 or 400 for the whole document: halve the batch until the one sample the hub refuses
  is alone, then drop it (counted as ``rejected``): one bad sample never blocks the queue.

The token goes only to the hub the device enrolled with (its credentials), never to a
redirect target: redirects are not followed.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from edge.capture.store import SampleStore
from edge.contract import MAX_BATCH, MAX_BATCH_BYTES, SampleBatch, UploadReceipt, encode_json
from edge.errors import ContractError, StorageError

log = logging.getLogger("edgekit.capture")

MAX_BACKOFF_S = 300.0
MAX_RETRY_AFTER_S = 600.0
REQUEST_TIMEOUT_S = 30.0
ENVELOPE_BYTES = 1024  # the batch document around its samples, generously
Endpoint = Callable[[], "tuple[str, str] | None"]  # (hub URL, device token), None: not enrolled


@dataclass
class UploadPass:
    """What one :meth:`Uploader.upload_once` did."""

    sent: int = 0
    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    status: int | None = None  # HTTP status of the last request (None: no answer / not sent)
    error: str | None = None
    retry_after: float | None = None  # seconds the hub asked to wait (429)

    @property
    def ok(self) -> bool:
        return self.error is None


class Uploader:
    """Drains a :class:`SampleStore` to the hub; :meth:`start` runs it in a thread."""

    def __init__(
        self,
        store: SampleStore,
        device: str,
        endpoint: Endpoint,
        *,
        batch: Callable[[], int] = lambda: 32,
        interval: Callable[[], float] = lambda: 10.0,
    ) -> None:
        self.store = store
        self.device = device
        self.endpoint = endpoint
        self.batch = batch
        self.interval = interval
        self.stats = {"requests": 0, "failures": 0, "throttled": 0}
        self.last_error: str | None = None
        self._limit = MAX_BATCH  # shrinks while the hub refuses whole batches
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures = 0

    # -- one pass ------------------------------------------------------------------------

    def upload_once(self) -> UploadPass:
        """Send one batch of the oldest pending samples and settle them by the answer."""
        result = UploadPass()
        endpoint = self.endpoint()
        if endpoint is None:
            result.error = "not enrolled with a hub: samples stay on the device"
            return result
        hub, token = endpoint
        size = max(1, min(self.batch(), self._limit, MAX_BATCH))
        samples = self.store.pending(size, MAX_BATCH_BYTES - ENVELOPE_BYTES)
        if not samples:
            return result
        body = encode_json(SampleBatch(self.device, tuple(samples)).to_dict())
        result.sent = len(samples)
        self.stats["requests"] += 1
        try:
            status, headers, text = self._post(hub, token, body)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            result.error = f"hub {hub} unreachable: {exc}"
            return result
        result.status = status
        if status == 200:
            self._limit = min(MAX_BATCH, self._limit * 2)  # back up after narrowing down
            return self._settle(result, text, {s.id for s in samples})
        if status == 429:
            self.stats["throttled"] += 1
            result.retry_after = retry_after(headers.get("Retry-After"))
            result.error = "hub asked the device to slow down (429)"
        elif status in (400, 413):
            result.error = f"hub refused the batch ({status}): {_message(text)}"
            if len(samples) > 1:
                self._limit = max(1, len(samples) // 2)  # find the one it refuses
            else:
                self.store.remove([samples[0].id], "rejected")
                result.rejected.append(samples[0].id)
                log.error("hub refused sample %s (%s); dropped", samples[0].id, result.error)
        else:
            result.error = f"hub answered {status}: {_message(text)}"
        return result

    def _settle(self, result: UploadPass, text: bytes, sent: set[str]) -> UploadPass:
        try:
            obj = json.loads(text)
            receipt = UploadReceipt.from_dict(obj if isinstance(obj, dict) else {})
        except (ValueError, ContractError) as exc:
            result.error = f"hub answer is not an upload receipt: {exc}"
            return result
        result.accepted = [i for i in receipt.accepted if i in sent]
        result.duplicates = [i for i in receipt.duplicates if i in sent]
        result.rejected = [i for i, _ in receipt.rejected if i in sent]
        self.store.remove([*result.accepted, *result.duplicates], "uploaded")
        self.store.remove(result.rejected, "rejected")
        for sid, why in receipt.rejected:
            log.warning("hub rejected sample %s: %s", sid, why)
        return result

    def _post(self, hub: str, token: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        target = urlsplit(hub)
        if target.scheme not in ("http", "https") or not target.hostname:
            raise ValueError(f"hub URL {hub!r} is not http(s)://HOST[:PORT]")
        conn: http.client.HTTPConnection
        if target.scheme == "https":
            conn = http.client.HTTPSConnection(
                target.hostname, target.port, timeout=REQUEST_TIMEOUT_S,
                context=ssl.create_default_context(),
            )  # fmt: skip
        else:
            conn = http.client.HTTPConnection(
                target.hostname, target.port, timeout=REQUEST_TIMEOUT_S
            )
        path = f"{target.path.rstrip('/')}/api/v1/devices/{quote(self.device, safe='')}/samples"
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "User-Agent": "edgekit-agent",
        }
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            text = resp.read(1 << 20)
            return resp.status, {k.title(): v for k, v in resp.getheaders()}, text
        finally:
            conn.close()

    # -- background ----------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="capture-upload", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Upload soon (a new sample, a new setting)."""
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=REQUEST_TIMEOUT_S + 5)
            self._thread = None

    def _run(self) -> None:
        delay, hold = 0.0, False
        while not self._stop.is_set():
            if delay > 0:
                # a back-off (outage, 429) is not cut short by new samples, only by stop
                (self._stop if hold else self._wake).wait(delay)
            self._wake.clear()
            if self._stop.is_set():
                break
            delay, hold = self._next_delay(self._pass())

    def _pass(self) -> UploadPass:
        try:
            return self.upload_once()
        except StorageError as exc:
            return UploadPass(error=f"capture store: {exc}")
        except Exception as exc:  # the uploader must outlive any one pass
            log.exception("capture upload failed")
            return UploadPass(error=str(exc))

    def _next_delay(self, result: UploadPass) -> tuple[float, bool]:
        """Seconds until the next pass, and whether only stop may cut the wait short."""
        interval = max(0.05, self.interval())
        if result.ok:
            self._failures = 0
            self.last_error = None
            # more waiting: go on at once; else rest until the next sample or interval
            return (0.0 if result.sent and self.store.stats()["pending"] else interval), False
        self.last_error = result.error
        if result.retry_after is not None:
            return result.retry_after, True
        if result.status in (400, 413):
            return 0.0, False  # narrowing down the sample the hub refuses
        if result.status is None and result.sent == 0:
            return interval, False  # not enrolled: look again now and then
        self._failures += 1
        self.stats["failures"] += 1
        if self._failures == 1:
            log.warning("capture upload: %s (retrying with back-off)", result.error)
        return min(MAX_BACKOFF_S, interval * 2 ** (self._failures - 1)), True


def retry_after(value: str | None) -> float:
    """Seconds from a Retry-After header (delta seconds or an HTTP date), capped; 1 s when
    it is missing or unreadable."""
    if not value:
        return 1.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return 1.0
        seconds = when.timestamp() - time.time()
    if seconds != seconds:
        return 1.0
    return min(MAX_RETRY_AFTER_S, max(0.0, seconds))


def _message(text: bytes) -> str:
    try:
        obj = json.loads(text)
    except ValueError:
        return text[:200].decode("utf-8", "replace")
    if isinstance(obj, dict):
        err = obj.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return err["message"]
        if isinstance(err, str):
            return err
    return str(obj)[:200]
