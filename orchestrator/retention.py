"""Retention: closed runs are kept for a period set per namespace, then removed.

Any worker may sweep (each removal re-checks the run in its script, so two
sweepers never remove an open or recent run). Memory stays flat under a steady
load: what closes today is gone after the retention period.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import TYPE_CHECKING

import orjson

from . import scripts
from .errors import ConfigurationError

if TYPE_CHECKING:
    from .client import Client

logger = logging.getLogger(__name__)

DEFAULT_RETENTION = timedelta(days=7)
SWEEP_BATCH = 500


async def get_retention(client: Client) -> timedelta:
    seconds = await client.redis.hget(client.keys.meta(), "retention_seconds")
    return timedelta(seconds=float(seconds)) if seconds else DEFAULT_RETENTION


async def set_retention(client: Client, period: timedelta) -> None:
    if period.total_seconds() <= 0:
        raise ConfigurationError("the retention period must be positive")
    await client.redis.hset(client.keys.meta(), "retention_seconds", period.total_seconds())


async def sweep(client: Client) -> int:
    """Remove one batch of expired runs per shard; return how many were removed."""
    retention = await get_retention(client)
    cutoff = int((time.time() - retention.total_seconds()) * 1000)
    removed = 0
    for shard in range(client.keys.shards):
        removed += await _sweep_shard(client, shard, cutoff)
    if removed:
        logger.info("retention: removed %d closed run(s)", removed)
    return removed


async def _sweep_shard(client: Client, shard: int, cutoff: int) -> int:
    k, redis = client.keys, client.redis
    vis = k.visibility(shard)
    run_ids = await redis.zrangebyscore(vis.close, "-inf", cutoff, start=0, num=SWEEP_BATCH)
    if not run_ids:
        return 0
    summaries = await redis.hmget(vis.runs, run_ids)
    calls = []
    for run_id, raw in zip(run_ids, summaries, strict=True):
        if raw is None:  # only an index entry is left of it
            await redis.zrem(vis.close, run_id)
            await redis.zrem(vis.start, run_id)
            continue
        summary = orjson.loads(raw)
        wid = summary["workflow_id"]
        calls.append(
            (
                scripts.PURGE_RUN,
                [
                    k.run(wid, run_id),
                    k.history(wid, run_id),
                    k.children(wid, run_id),
                    k.workflow(wid),
                    *vis,
                    k.visibility_by_type(shard, summary["workflow_type"]),
                    k.visibility_by_queue(shard, summary["task_queue"]),
                    k.visibility_by_status(shard, summary["status"]),
                ],
                [run_id, cutoff],
            )
        )
    replies = await scripts.run_pipeline(redis, calls)
    return sum(1 for reply in replies if not isinstance(reply, Exception) and reply[0] == "PURGED")
