"""Queries: answered by a worker from the run's state, cached or replayed."""

from __future__ import annotations

import time
from typing import Any

import pytest

from orchestrator import Client, QueryError

import defs
from helpers import events_of, eventually, run, running_worker

OPTIONS: dict[str, Any] = dict(
    task_queue="queries", workflows=defs.ALL_WORKFLOWS, activities=defs.ALL_ACTIVITIES
)


def test_query_a_running_workflow_from_cache_and_after_a_restart(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            async with running_worker(client, **OPTIONS):
                handle = await client.start_workflow("Approval", 3, id="q", task_queue="queries")
                await handle.signal("approve", "a")
                await handle.signal("approve", "b")

                async def both_seen() -> bool:
                    try:
                        return await handle.query("received") == ["a", "b"]
                    except QueryError:  # the first workflow task has not run yet
                        return False

                await eventually(both_seen)
                assert await handle.query("count_with", 10) == 12
            # A new worker has nothing cached: it replays the history to answer.
            async with running_worker(client, **OPTIONS):
                assert await handle.query("received") == ["a", "b"]
                await handle.signal("approve", "c")
                assert await handle.result(timeout=20) == ["a", "b", "c"]
                # Closed runs can be queried too.
                assert await handle.query("received") == ["a", "b", "c"]
            history_before = await handle.history()
        assert history_before[-1]["type"] == "WorkflowExecutionCompleted"

    run(main())


def test_unknown_query_is_a_clear_error(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            handle = await client.start_workflow("Approval", 1, id="uq", task_queue="queries")

            async def first_task_done() -> bool:
                return bool(events_of(await handle.history(), "WorkflowTaskCompleted"))

            await eventually(first_task_done)
            with pytest.raises(QueryError, match=r"no query handler 'nope'.*received"):
                await handle.query("nope")

    run(main())


def test_query_without_a_worker_times_out_clearly(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            handle = await client.start_workflow("Approval", 1, id="nw", task_queue="queries")
            began = time.monotonic()
            with pytest.raises(QueryError, match=r"no worker answered.*'queries'"):
                await handle.query("received", timeout=0.5)
            assert time.monotonic() - began < 3
            stream = client.keys.query_tasks("queries", 0)
            assert await client.redis.xlen(stream) == 0  # the request was withdrawn

    run(main())


def test_query_sees_signals_no_workflow_task_processed_yet(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            # No worker runs the workflow's tasks yet: the start and the signal are
            # only in the history. A worker answering the query still sees both.
            handle = await client.signal_with_start(
                "Approval",
                5,
                id="early",
                task_queue="queries-early",
                signal="approve",
                signal_args=["first"],
            )
            async with running_worker(client, **{**OPTIONS, "task_queue": "queries-early"}):
                assert await handle.query("received") == ["first"]

    run(main())
