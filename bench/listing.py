"""Listing benchmark: filtered pages and counts over many closed workflow runs.

    .venv/bin/python bench/listing.py [--runs 100000] [--shards 1]

Starts its own redis-server on a free loopback port, starts RUNS workflows over
four types and two task queues and terminates them (closed runs, as many as
wanted, without running any code), then times list pages and counts. Figures
are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator import Client  # noqa: E402
from orchestrator.devserver import EmbeddedRedis  # noqa: E402

TYPES = ("Order", "Invoice", "Report", "Audit")


async def seed(client: Client, runs: int) -> None:
    batch = 500
    for start in range(0, runs, batch):
        handles = await asyncio.gather(
            *(
                client.start_workflow(
                    TYPES[i % 4], i, id=f"w-{i}", task_queue="us" if i % 10 == 3 else "eu"
                )
                for i in range(start, min(start + batch, runs))
            )
        )
        await asyncio.gather(*(h.terminate("bench") for h in handles))


async def timed(label: str, call: object) -> None:
    began = time.perf_counter()
    result = await call  # type: ignore[misc]
    elapsed = (time.perf_counter() - began) * 1000
    size = len(result.executions) if hasattr(result, "executions") else result
    print(f"{label:<58} {elapsed:8.1f} ms   ({size})")


async def main(runs: int, shards: int) -> None:
    with EmbeddedRedis(prefer="redis-server") as server:
        client = await Client.connect(server.url, shards=shards)
        async with client:
            began = time.perf_counter()
            await seed(client, runs)
            print(
                f"seeded {runs} closed runs in {time.perf_counter() - began:.1f} s "
                f"({shards} shard(s))"
            )
            await timed("list, newest 50, no filter", client.list_workflows(page_size=50))
            await timed(
                "list 50, type=Audit", client.list_workflows(page_size=50, workflow_type="Audit")
            )
            await timed(
                "list 50, type=Audit, queue=us (1 in 20)",
                client.list_workflows(page_size=50, workflow_type="Audit", task_queue="us"),
            )
            await timed(
                "list 50, status=COMPLETED (none: its index is empty)",
                client.list_workflows(page_size=50, status="COMPLETED"),
            )
            await timed(
                "list 50, status=RUNNING (open-runs index)",
                client.list_workflows(page_size=50, status="RUNNING"),
            )
            await timed("count, type=Audit", client.count_workflows(workflow_type="Audit"))
            await timed(
                "list 50, status=TERMINATED, type=Report",
                client.list_workflows(page_size=50, status="TERMINATED", workflow_type="Report"),
            )
            await timed("count, status=TERMINATED", client.count_workflows(status="TERMINATED"))
            await timed("count, no filter", client.count_workflows())
            await timed(
                "count, type=Audit, queue=us",
                client.count_workflows(workflow_type="Audit", task_queue="us"),
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--shards", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.runs, args.shards))
