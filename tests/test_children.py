"""Child workflows: results, failures, continue-as-new, parent-close policies, across shards."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import Client

import defs
from helpers import events_of, eventually, run, running_worker

OPTIONS: dict[str, Any] = dict(
    task_queue="children", workflows=defs.ALL_WORKFLOWS, activities=defs.ALL_ACTIVITIES
)


@pytest.mark.parametrize("shards", [1, 4])
def test_child_result_reaches_the_parent(url: str, shards: int) -> None:
    async def main() -> None:
        client = await Client.connect(url, namespace=f"s{shards}", shards=shards)
        async with client, running_worker(client, **OPTIONS):
            handle = await client.start_workflow("Parent", "result", id="p1", task_queue="children")
            assert await handle.result(timeout=20) == "Hello child!"
            history = await handle.history()
            kinds = [e["type"] for e in history]
            assert kinds.count("StartChildWorkflowExecutionInitiated") == 1
            assert kinds.count("ChildWorkflowExecutionStarted") == 1
            assert kinds.count("ChildWorkflowExecutionCompleted") == 1
            (initiated,) = events_of(history, "StartChildWorkflowExecutionInitiated")
            child = client.get_workflow_handle(initiated["attrs"]["workflow_id"])
            assert (await child.describe()).status == "COMPLETED"

    run(main())


def test_child_failure_is_raised_in_the_parent(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            handle = await client.start_workflow("Parent", "fail", id="p2", task_queue="children")
            assert await handle.result(timeout=20) == ["FAILED", "RuntimeError", "child boom"]

    run(main())


def test_child_that_continues_as_new(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            handle = await client.start_workflow(
                "Parent", "counter", id="p3", task_queue="children"
            )
            assert await handle.result(timeout=20) == 2

    run(main())


@pytest.mark.parametrize(
    ("policy", "expected"), [("terminate", "TERMINATED"), ("abandon", "RUNNING")]
)
def test_parent_close_policy(url: str, policy: str, expected: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            handle = await client.start_workflow(
                "Parent", policy, id=f"p-{policy}", task_queue="children"
            )
            child_id = await handle.result(timeout=20)
            child = client.get_workflow_handle(child_id)

            async def settled() -> bool:
                return (await child.describe()).status == expected

            await eventually(settled)
            if policy == "abandon":
                await child.signal("approve", "still alive")
                assert await child.result(timeout=20) == ["still alive"]

    run(main())
