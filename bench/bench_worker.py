"""The worker process of bench/throughput.py: a workflow of K no-op activities."""

from __future__ import annotations

import asyncio
import logging

from orchestrator import Client, Worker, activity, logs, workflow


@activity.defn(name="Noop")
async def noop(i: int) -> int:
    return i


@workflow.defn(name="Bench")
async def bench(k: int, shape: str) -> int:
    if shape == "par":
        results = await asyncio.gather(
            *(workflow.start_activity(noop, i, start_to_close_timeout=30) for i in range(k))
        )
        return sum(results)
    total = 0
    for i in range(k):
        total += await workflow.execute_activity(noop, i, start_to_close_timeout=30)
    return total


async def main() -> None:
    logs.configure(logging.WARNING)
    client = await Client.connect()
    worker = Worker(
        client,
        task_queue="bench",
        workflows=[bench],
        activities=[noop],
        max_concurrent_activities=200,
        max_concurrent_workflow_tasks=200,
    )
    await worker.run()


if __name__ == "__main__":
    asyncio.run(main())
