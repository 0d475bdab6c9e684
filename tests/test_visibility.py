"""Listing and counting runs: filters, pagination, agreement with the runs' own state."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator import Client, ConfigurationError, WorkflowFailureError

import defs
from helpers import run, running_worker

OPTIONS: dict[str, Any] = dict(
    task_queue="vis", workflows=defs.ALL_WORKFLOWS, activities=defs.ALL_ACTIVITIES
)


async def all_pages(client: Client, page_size: int, **where: Any) -> list[Any]:
    items, token = [], None
    while True:
        page = await client.list_workflows(page_size=page_size, next_page_token=token, **where)
        items += page.executions
        token = page.next_page_token
        if token is None:
            return items


@pytest.mark.parametrize("shards", [1, 3])
def test_listing_filters_and_pages_over_a_few_thousand_runs(url: str, shards: int) -> None:
    async def main() -> None:
        client = await Client.connect(url, namespace=f"vis{shards}", shards=shards)
        async with client:
            # 2,000 runs no worker serves (RUNNING), over two types and two queues.
            for i in range(0, 2000, 100):
                await asyncio.gather(
                    *(
                        client.start_workflow(
                            "Approval" if j % 4 else "Gated",
                            1,
                            id=f"r-{j}",
                            task_queue="vis" if j % 2 else "other",
                        )
                        for j in range(i, i + 100)
                    )
                )
            assert await client.count_workflows() == 2000
            assert await client.count_workflows(workflow_type="Gated") == 500
            assert await client.count_workflows(task_queue="other", status="RUNNING") == 1000

            listed = await all_pages(client, 170, workflow_type="Gated")
            assert len(listed) == 500 and len({e.run_id for e in listed}) == 500
            starts = [e.start_time for e in listed]
            assert starts == sorted(starts, reverse=True)  # newest first
            assert all(e.workflow_type == "Gated" for e in listed)

            began = time.perf_counter()
            page = await client.list_workflows(
                page_size=50, workflow_type="Gated", task_queue="other"
            )
            assert time.perf_counter() - began < 1.0
            assert len(page.executions) == 50

    run(main())


def test_listing_agrees_with_state_as_runs_close(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            before = datetime.now(UTC) - timedelta(seconds=1)
            done = await client.start_workflow("Hello", "x", id="h", task_queue="vis")
            await done.result(timeout=20)
            failed = await client.start_workflow("Unhandled", "x", id="u", task_queue="vis")
            with pytest.raises(WorkflowFailureError):
                await failed.result(timeout=20)
            open_ = await client.start_workflow("Approval", 1, id="a", task_queue="vis")
            cut = await client.start_workflow("Approval", 1, id="t", task_queue="vis")
            await cut.terminate()

            async def status_of(workflow_id: str) -> str:
                page = await client.list_workflows(page_size=100)
                return next(e.status for e in page.executions if e.workflow_id == workflow_id)

            assert await status_of("h") == "COMPLETED"
            assert await status_of("u") == "FAILED"
            assert await status_of("a") == "RUNNING"
            assert await status_of("t") == "TERMINATED"
            assert (await open_.describe()).status == "RUNNING"
            closed = await client.list_workflows(closed_after=before)
            assert {e.workflow_id for e in closed.executions} == {"h", "u", "t"}
            assert all(e.close_time is not None for e in closed.executions)
            assert await client.count_workflows(status="COMPLETED") == 1

    run(main())


def test_bad_filters_are_clear_errors(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            with pytest.raises(ConfigurationError, match="status must be one of"):
                await client.list_workflows(status="DONE")
            with pytest.raises(ConfigurationError, match="time zone"):
                await client.list_workflows(started_after=datetime.now())
            with pytest.raises(ConfigurationError, match="page token"):
                await client.list_workflows(next_page_token="garbage")

    run(main())


def test_retention_removes_expired_runs_and_nothing_else(url: str) -> None:
    from datetime import timedelta

    from orchestrator import retention

    async def main() -> None:
        async with await Client.connect(url) as client:
            assert await client.retention() == timedelta(days=7)
            async with running_worker(client, **{**OPTIONS, "retention_sweep_interval": None}):
                old = [
                    await client.start_workflow("Hello", str(i), id=f"old-{i}", task_queue="vis")
                    for i in range(5)
                ]
                for handle in old:
                    await handle.result(timeout=20)
                running = await client.start_workflow("Approval", 1, id="open", task_queue="vis")
                await client.set_retention(timedelta(seconds=1))
                await asyncio.sleep(1.2)
                fresh = await client.start_workflow("Hello", "new", id="fresh", task_queue="vis")
                await fresh.result(timeout=20)
                assert await retention.sweep(client) == 5
                assert await retention.sweep(client) == 0  # the fresh one is not due yet

            keys = set(await client.redis.keys("*"))
            for handle in old:
                assert client.keys.run(handle.id, handle.run_id) not in keys
                assert client.keys.history(handle.id, handle.run_id) not in keys
                assert client.keys.workflow(handle.id) not in keys
            assert (await running.describe()).status == "RUNNING"
            assert await fresh.result() == "Hello new!"
            assert await client.count_workflows() == 2
            listed = {e.workflow_id for e in (await client.list_workflows()).executions}
            assert listed == {"open", "fresh"}

    run(main())
