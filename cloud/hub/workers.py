"""Background workers of a hub process: MQTT bridge, rollout ticker, telemetry compaction,
the staleness sweep (silent devices without a will are shown offline) and sample retention.

The ticker, compaction, sweep and retention are singletons across hub processes: they run
only in the leader (:class:`cloud.hub.leader.Leader`, the holder of the ``scheduler`` lease,
renewed on a thread of its own), so two gunicorn workers never send the same deploy command
twice; when the leader dies a follower takes over within ``4/3`` of the lease TTL.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

from cloud.hub.ingest import telemetry_store
from cloud.hub.leader import SCHEDULER_LEASE, Leader, lease_ttl
from cloud.hub.rollout import Ticker
from cloud.hub.samples import enforce_retention
from cloud.hub.storage import leases

if TYPE_CHECKING:
    from cloud.hub.context import Hub

log = logging.getLogger(__name__)
__all__ = ["SCHEDULER_LEASE", "start_workers"]


def start_workers(hub: Hub) -> None:
    cfg = hub.config
    if cfg.broker_url:
        from cloud.hub.ingest import MqttBridge

        hub.bridge = MqttBridge(cfg, hub.db).start()
        hub.workers.append(hub.bridge)
        hub.service.publisher = hub.bridge.publish_command
    holder = f"{leases.WORKER_ID}-{uuid.uuid4().hex[:6]}"  # one per app, even in one process
    # First in the list, so Hub.stop() stops it last: the lease is handed back only after
    # this process's jobs have stopped.
    leader = Leader(hub.db, lease_ttl(cfg.tick_interval_s), holder=holder)
    hub.workers.insert(0, leader)
    leader.renew()  # a lone hub leads from its first tick, not one renewal period later
    leader.start()

    def tick() -> None:
        if leader.is_leader:
            hub.service.tick()

    def compact() -> None:
        if not leader.is_leader:
            return
        with hub.db.session() as s:
            raw, minutes = telemetry_store.compact(
                s, time.time(), cfg.raw_retention_s, cfg.minute_retention_s
            )
        if raw or minutes:
            log.info("compaction dropped %d raw rows and %d minute rows", raw, minutes)

    def sweep_stale() -> None:
        if not leader.is_leader:
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
            _sample_retention(hub, leader),
        ).start()
    )


def _sample_retention(hub: Hub, leader: Leader) -> Callable[[], None]:
    """The retention job (cloud/hub/samples/retention.py), run by the leader only."""
    cfg = hub.config

    def run() -> None:
        if not leader.is_leader:
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
