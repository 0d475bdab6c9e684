"""Child workflows: results, failures, continue-as-new, parent-close policies, across shards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis

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
    ("policy", "expected"),
    [("terminate", "TERMINATED"), ("request_cancel", "CANCELED"), ("abandon", "RUNNING")],
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


def test_worker_killed_while_a_child_runs(url: str) -> None:
    """SIGKILL the only worker mid-child: a new one finishes parent and child, once each."""
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "ORCHESTRATOR_REDIS_URL": url}

    def spawn() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "tests/worker_process.py", "children"],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    r = redis.Redis.from_url(url, decode_responses=True)
    first = spawn()
    try:

        async def start() -> None:
            async with await Client.connect(url) as client:
                await client.start_workflow("Parent", "gated", id="pk", task_queue="children")

        run(start())
        deadline = time.monotonic() + 20
        while not r.get("started:child-gate"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        r.set("gate:child-gate", "1")
        second = spawn()
        try:

            async def finish() -> None:
                async with await Client.connect(url) as client:
                    parent = client.get_workflow_handle("pk")
                    assert await parent.result(timeout=30) == [
                        "Hello first!",
                        "gate child-gate opened",
                        "Hello last!",
                    ]
                    history = await parent.history()
                    (started,) = events_of(history, "ChildWorkflowExecutionStarted")
                    child = await client.get_workflow_handle("gated-child").describe()
                    # One child run: the one the parent recorded, completed.
                    assert child.run_id == started["attrs"]["run_id"]
                    assert child.status == "COMPLETED"
                    assert len(events_of(history, "ChildWorkflowExecutionCompleted")) == 1

            run(finish())
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=15)
    finally:
        if first.poll() is None:
            first.kill()
