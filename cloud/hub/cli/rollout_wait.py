"""``--wait``: poll a rollout until it settles, with backoff, and say how it ended.

A rollout settles when it is terminal (completed, aborted, rolled_back) or paused: a pause
(the ``pause`` error action, or an operator) needs a person, so a pipeline must not sit on
it until its own timeout. Polls start at ``interval`` and back off to ``max_interval`` while
nothing changes; a change (or a new wave) polls fast again. A hub that stops answering is
retried until the deadline. Progress is a tqdm bar on a terminal (stderr) and nothing
otherwise, so logs of a pipeline stay clean.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from cloud.hub.cli.client import CliError, Exit, HubClient, HubRefused, HubUnreachable, quote

ENDED = {"completed": Exit.OK, "aborted": Exit.ROLLOUT_FAILED,
         "rolled_back": Exit.ROLLOUT_FAILED, "paused": Exit.PAUSED}  # fmt: skip


class Progress:
    """A tqdm bar of devices settled (committed + failed + incompatible) out of the target."""

    def __init__(self, enabled: bool) -> None:
        self.bar: Any = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=0, unit="dev", file=sys.stderr, leave=False, dynamic_ncols=True)

    def show(self, r: dict[str, Any]) -> None:
        if self.bar is None:
            return
        waves = r.get("waves") or []
        self.bar.total = r.get("target_size") or 0
        self.bar.n = sum(int(r.get(k) or 0) for k in ("committed", "failed", "incompatible"))
        wave = f"wave {int(r.get('current_wave') or 0) + 1}/{len(waves)}" if waves else ""
        self.bar.set_description(f"{r.get('state')} {wave}".strip(), refresh=False)
        self.bar.set_postfix_str(f"waiting for {r['waiting_for']}" if r.get("waiting_for")
                                 else "", refresh=False)  # fmt: skip
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def wait(
    client: HubClient,
    rid: str,
    timeout: float,
    *,
    interval: float = 0.5,
    max_interval: float = 10.0,
    progress: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, Any], Exit]:
    """The rollout as last seen and its exit code (OK, ROLLOUT_FAILED, PAUSED or TIMEOUT);
    raises HubUnreachable when the deadline passes while the hub does not answer."""
    deadline = time.monotonic() + timeout
    bar = Progress(sys.stderr.isatty() if progress is None else progress)
    delay, last, seen = interval, None, None
    try:
        while True:
            try:
                r = client.get(f"/rollouts/{quote(rid)}")
                failure: CliError | None = None
            except HubUnreachable as exc:
                failure = exc
            except HubRefused as exc:
                if exc.status != 429 and exc.status < 500:
                    raise  # 404, 401, ...: polling again will not help
                failure = exc
                delay = max(delay, exc.retry_after or 0.0)
            if failure is None:
                last = r
                bar.show(r)
                if r["state"] in ENDED:
                    return r, ENDED[r["state"]]
                now = (r.get("updated"), r.get("current_wave"), r.get("committed"), r.get("failed"))
                delay = interval if now != seen else min(max_interval, delay * 1.5)
                seen = now
            else:
                delay = min(max_interval, max(delay * 1.5, interval))
            left = deadline - time.monotonic()
            if left <= 0:
                if failure is not None:
                    raise failure
                assert last is not None
                return last, Exit.TIMEOUT
            sleep(min(delay, left))
    finally:
        bar.close()
