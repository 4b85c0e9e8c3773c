"""Background workers of a hub process: MQTT bridge, rollout ticker, telemetry compaction,
the staleness sweep (silent devices without a will are shown offline) and sample retention.

The ticker, compaction, sweep and retention are singletons across hub workers (a database
lease), so two gunicorn workers never send the same deploy command twice.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from cloud.hub.ingest import telemetry_store
from cloud.hub.rollout import Ticker
from cloud.hub.samples import enforce_retention
from cloud.hub.storage import leases

if TYPE_CHECKING:
    from cloud.hub.context import Hub

log = logging.getLogger(__name__)
SCHEDULER_LEASE = "scheduler"


def start_workers(hub: Hub) -> None:
    cfg = hub.config
    if cfg.broker_url:
        from cloud.hub.ingest import MqttBridge

        hub.bridge = MqttBridge(cfg, hub.db).start()
        hub.workers.append(hub.bridge)
        hub.service.publisher = hub.bridge.publish_command
    lease_ttl = max(5.0, cfg.tick_interval_s * 5)
    holder = f"{leases.WORKER_ID}-{uuid.uuid4().hex[:6]}"  # one per app, even in one process

    def tick() -> None:
        if leases.try_acquire(hub.db, SCHEDULER_LEASE, lease_ttl, holder):
            hub.service.tick()

    def compact() -> None:
        if not leases.try_acquire(hub.db, SCHEDULER_LEASE, lease_ttl, holder):
            return
        with hub.db.session() as s:
            raw, minutes = telemetry_store.compact(
                s, time.time(), cfg.raw_retention_s, cfg.minute_retention_s
            )
        if raw or minutes:
            log.info("compaction dropped %d raw rows and %d minute rows", raw, minutes)

    def sweep_stale() -> None:
        if not leases.try_acquire(hub.db, SCHEDULER_LEASE, lease_ttl, holder):
            return
        with hub.db.session() as s:
            stale = telemetry_store.mark_stale_offline(
                s, time.time(), cfg.stale_intervals, cfg.offline_after_s
            )
        if stale:
            log.info("%d silent devices marked offline: %s", len(stale), ", ".join(stale[:10]))

    sweep_every = min(10.0, max(0.2, cfg.offline_after_s / 4))
    hub.workers.append(Ticker("hub-rollouts", cfg.tick_interval_s, tick).start())
    hub.workers.append(Ticker("hub-staleness", sweep_every, sweep_stale).start())
    hub.workers.append(Ticker("hub-compaction", cfg.compaction_interval_s, compact).start())
    hub.workers.append(
        Ticker(
            "hub-samples",
            cfg.sample_retention_interval_s,
            _sample_retention(hub, lease_ttl, holder),
        ).start()
    )


def _sample_retention(hub: Hub, lease_ttl: float, holder: str) -> Callable[[], None]:
    """The retention job (cloud/hub/samples/retention.py) under the scheduler lease."""
    cfg = hub.config

    def run() -> None:
        if not leases.try_acquire(hub.db, SCHEDULER_LEASE, lease_ttl, holder):
            return
        with hub.db.session() as s:
            done = enforce_retention(
                s,
                cfg.samples_dir,
                max_age_s=cfg.sample_max_age_days * 86400.0,
                max_count=cfg.sample_max_count,
            )
        if done.total:
            log.info(
                "sample retention: %d expired, %d over the count limit, %d orphan files",
                done.expired,
                done.over_count,
                done.orphans,
            )

    return run
