"""A worker process for the scaling tests: ``python tests/scale_worker.py TASK_QUEUE [options]``.

Runs the ``Scale`` workflow (a fan-out of activities in parallel, then a chain of
activities in sequence) and its ``ScaleStep`` activity. Every execution of the
activity records itself in Redis, so a test can tell which worker process ran
which step and how many times it was started and completed:

* ``scale:started`` and ``scale:completed``: hashes ``<workflow id>:<step>`` -> count;
* ``scale:started_by:<pid>`` and ``scale:completed_by:<pid>``: lists of ``<workflow id>:<step>``.

``--sleep`` makes this process's activities sleep that long (asyncio, so a
worker's shutdown can cut them short). Reads ORCHESTRATOR_REDIS_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import timedelta

import redis.asyncio

from orchestrator import Client, Worker, activity, logs, workflow

STARTED, COMPLETED = "scale:started", "scale:completed"
STARTED_BY, COMPLETED_BY = "scale:started_by:", "scale:completed_by:"

_record: redis.asyncio.Redis | None = None
_sleep = 0.0


@activity.defn(name="ScaleStep")
async def scale_step(workflow_id: str, step: int) -> str:
    assert _record is not None
    key, pid = f"{workflow_id}:{step}", os.getpid()
    async with _record.pipeline(transaction=True) as pipe:
        pipe.hincrby(STARTED, key, 1)
        pipe.rpush(f"{STARTED_BY}{pid}", key)
        await pipe.execute()
    if _sleep:
        await asyncio.sleep(_sleep)
    async with _record.pipeline(transaction=True) as pipe:
        pipe.hincrby(COMPLETED, key, 1)
        pipe.rpush(f"{COMPLETED_BY}{pid}", key)
        await pipe.execute()
    return f"{key}@{pid}"


@workflow.defn(name="Scale")
async def scale(parallel: int, sequential: int) -> list[str]:
    """``parallel`` steps gathered at once, then ``sequential`` steps one after the other."""
    workflow_id = workflow.info().workflow_id
    timeout = timedelta(seconds=60)
    results = list(
        await asyncio.gather(
            *(
                workflow.start_activity(scale_step, workflow_id, i, start_to_close_timeout=timeout)
                for i in range(parallel)
            )
        )
    )
    for i in range(parallel, parallel + sequential):
        results.append(
            await workflow.execute_activity(
                scale_step, workflow_id, i, start_to_close_timeout=timeout
            )
        )
    return results


async def main() -> None:
    global _record, _sleep
    parser = argparse.ArgumentParser()
    parser.add_argument("task_queue")
    parser.add_argument("--max-activities", type=int, default=100)
    parser.add_argument("--max-workflow-tasks", type=int, default=100)
    parser.add_argument("--grace", type=float, default=10.0, help="graceful_shutdown_timeout")
    parser.add_argument("--reclaim-idle", type=float, default=30.0)
    parser.add_argument("--sleep", type=float, default=0.0, help="seconds each activity sleeps")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args()

    logs.configure(args.log_level)
    _sleep = args.sleep
    _record = redis.asyncio.Redis.from_url(os.environ["ORCHESTRATOR_REDIS_URL"])
    client = await Client.connect()
    try:
        worker = Worker(
            client,
            task_queue=args.task_queue,
            workflows=[scale],
            activities=[scale_step],
            max_concurrent_activities=args.max_activities,
            max_concurrent_workflow_tasks=args.max_workflow_tasks,
            graceful_shutdown_timeout=args.grace,
            reclaim_idle=args.reclaim_idle,
            poll_block=0.2,
            identity=f"scale:{os.getpid()}",
            drive_schedules=False,
            retention_sweep_interval=None,
        )
        await worker.run()
    finally:
        await client.close()
        await _record.aclose()


if __name__ == "__main__":
    asyncio.run(main())
