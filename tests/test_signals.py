"""Signals, signal-with-start, termination and workflow id policies."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator import (
    Client,
    WorkflowAlreadyStartedError,
    WorkflowFailureError,
    WorkflowNotRunningError,
)

import defs
from helpers import events_of, eventually, run, running_worker

OPTIONS: dict[str, Any] = dict(
    task_queue="signals", workflows=defs.ALL_WORKFLOWS, activities=defs.ALL_ACTIVITIES
)


def test_signal_before_and_after_start(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            # Signal-with-start on an id with no run: starts it, signal delivered first.
            handle = await client.signal_with_start(
                "Approval",
                3,
                id="ap",
                task_queue="signals",
                signal="approve",
                signal_args=["alice"],
            )
            # Signal-with-start on the running id: only signals it.
            again = await client.signal_with_start(
                "Approval",
                3,
                id="ap",
                task_queue="signals",
                signal="approve",
                signal_args=["bob"],
            )
            assert again.run_id == handle.run_id
            async with running_worker(client, **OPTIONS):
                await handle.signal("approve", "carol")
                assert await handle.result(timeout=20) == ["alice", "bob", "carol"]

    run(main())


def test_many_signals_during_a_task_are_delivered_in_order(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            handle = await client.start_workflow("Approval", 30, id="many", task_queue="signals")
            for i in range(30):
                await handle.signal("approve", f"s{i}")
            assert await handle.result(timeout=20) == [f"s{i}" for i in range(30)]

    run(main())


def test_async_signal_handler_runs_activities(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            handle = await client.start_workflow("SignalAsync", id="sa", task_queue="signals")
            await handle.signal("name", "x")
            await handle.signal("name", "y")
            assert sorted(await handle.result(timeout=20)) == ["Hello x!", "Hello y!"]

    run(main())


def test_no_accepted_signal_is_lost_when_the_workflow_completes(url: str) -> None:
    """Signals racing the completion: each one accepted is in the result, none after close."""

    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            handle = await client.start_workflow("Approval", 1, id="race", task_queue="signals")
            accepted = []
            for i in range(500):
                try:
                    await handle.signal("approve", f"s{i}")
                except WorkflowNotRunningError:
                    break
                accepted.append(f"s{i}")
            else:
                pytest.fail("the workflow never completed")
            assert await handle.result(timeout=20) == accepted

    run(main())


def test_signal_to_a_closed_run_is_refused(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            handle = await client.start_workflow("Hello", "x", id="closed", task_queue="signals")
            await handle.result(timeout=20)
            with pytest.raises(WorkflowNotRunningError):
                await handle.signal("approve", "late")

    run(main())


def test_terminate_ends_the_run_without_running_code(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            handle = await client.start_workflow("Gated", ["term"], id="t", task_queue="signals")
            await eventually(lambda: client.redis.get("started:term"))
            await handle.terminate("operator says stop")
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result(timeout=5)
            assert info.value.status == "TERMINATED"
            await client.redis.set("gate:term", "1")
            await asyncio.sleep(0.5)  # the activity finishes; its result must be refused
            history = await handle.history()
            assert history[-1]["type"] == "WorkflowExecutionTerminated"
            assert history[-1]["attrs"]["reason"] == "operator says stop"
            assert len(events_of(history, "ActivityTaskCompleted")) == 1  # only "first"
            with pytest.raises(WorkflowNotRunningError):
                await handle.terminate()

    run(main())


def test_id_conflict_policies(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            first = await client.start_workflow("Approval", 1, id="p", task_queue="idle")
            same = await client.start_workflow(
                "Approval", 1, id="p", task_queue="idle", id_conflict_policy="use_existing"
            )
            assert same.run_id == first.run_id
            with pytest.raises(WorkflowAlreadyStartedError):
                await client.start_workflow("Approval", 1, id="p", task_queue="idle")
            replaced = await client.start_workflow(
                "Approval", 1, id="p", task_queue="idle", id_conflict_policy="terminate_existing"
            )
            assert replaced.run_id != first.run_id
            assert (await first.describe()).status == "TERMINATED"
            assert (await client.get_workflow_handle("p").describe()).run_id == replaced.run_id

    run(main())


def test_concurrent_starts_of_one_id_create_one_run(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            handles = await asyncio.gather(
                *(
                    client.start_workflow(
                        "Approval", 1, id="c", task_queue="idle", id_conflict_policy="use_existing"
                    )
                    for _ in range(20)
                )
            )
            assert len({h.run_id for h in handles}) == 1
            outcomes = await asyncio.gather(
                *(
                    client.start_workflow("Approval", 1, id="c2", task_queue="idle")
                    for _ in range(20)
                ),
                return_exceptions=True,
            )
            started = [o for o in outcomes if not isinstance(o, Exception)]
            assert len(started) == 1
            assert all(
                isinstance(o, WorkflowAlreadyStartedError)
                for o in outcomes
                if isinstance(o, Exception)
            )

    run(main())


def test_id_reuse_policies(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            ok = await client.start_workflow("Hello", "x", id="reuse", task_queue="signals")
            await ok.result(timeout=20)
            with pytest.raises(WorkflowAlreadyStartedError, match="COMPLETED"):
                await client.start_workflow(
                    "Hello",
                    "x",
                    id="reuse",
                    task_queue="signals",
                    id_reuse_policy="reject_duplicate",
                )
            with pytest.raises(WorkflowAlreadyStartedError):
                await client.start_workflow(
                    "Hello",
                    "x",
                    id="reuse",
                    task_queue="signals",
                    id_reuse_policy="allow_duplicate_failed_only",
                )
            bad = await client.start_workflow("Unhandled", "boom", id="reuse", task_queue="signals")
            with pytest.raises(WorkflowFailureError):
                await bad.result(timeout=20)
            retry = await client.start_workflow(
                "Hello",
                "y",
                id="reuse",
                task_queue="signals",
                id_reuse_policy="allow_duplicate_failed_only",
            )
            assert await retry.result(timeout=20) == "Hello y!"

    run(main())


def test_completion_is_refused_when_a_signal_arrived_during_the_task(url: str) -> None:
    from orchestrator import scripts
    from orchestrator.keys import CONSUMER_GROUP
    from orchestrator.timers import Timer

    async def main() -> None:
        async with await Client.connect(url) as client:
            r, k = client.redis, client.keys
            stream = k.workflow_tasks("late-signal", 0)
            await r.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
            handle = await client.start_workflow("Approval", 1, id="ls", task_queue="late-signal")
            rid = handle.run_id
            assert rid is not None
            # A worker takes the first task and, while it runs, a signal arrives.
            [[_, [(entry_id, _fields)]]] = await r.xreadgroup(
                CONSUMER_GROUP, "w1", {stream: ">"}, count=1
            )
            timer = Timer("wft_timeout", "ls", rid, 0, entry_id, "", "late-signal")
            run_keys = [k.run("ls", rid), k.history("ls", rid), stream, k.timers(0)]
            started = await scripts.WORKFLOW_TASK_START(
                r, run_keys, [entry_id, CONSUMER_GROUP, "w1", 10000, timer.member(), 0]
            )
            assert started[0] == "OK"
            await handle.signal("approve", "mid-task")
            # The code (which never saw the signal) tries to complete the run.
            reply = await scripts.WORKFLOW_TASK_COMPLETE(
                r,
                [*run_keys, k.workflow("ls")],
                [entry_id, "w1", "workers", "complete", b"{}", b"[]"],
            )
            assert reply == ["NEW_EVENTS"]
            history = await handle.history()
            assert history[-1]["type"] == "WorkflowTaskFailed"
            assert history[-1]["attrs"]["cause"] == "UNHANDLED_NEW_EVENTS"
            assert (await handle.describe()).status == "RUNNING"
            async with running_worker(client, **{**OPTIONS, "task_queue": "late-signal"}):
                assert await handle.result(timeout=20) == ["mid-task"]

    run(main())


def test_terminate_reason_is_the_failure_message(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            handle = await client.start_workflow("Approval", 1, id="why", task_queue="idle")
            await handle.terminate("duplicate order")
            description = await handle.describe()
            assert description.failure is not None
            assert description.failure.message == "duplicate order"

    run(main())
