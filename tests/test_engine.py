"""The engine end to end against a real Redis, with workers running in-process."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
import redis

from orchestrator import (
    Client,
    WorkflowAlreadyStartedError,
    WorkflowFailureError,
    WorkflowNotFoundError,
)

import defs
from helpers import events_of, eventually, returning, run, running_worker


def counts(url: str) -> dict[str, int]:
    with redis.Redis.from_url(url, decode_responses=True) as r:
        return {k.removeprefix("count:"): int(r.get(k) or 0) for k in r.keys("count:*")}


async def execute(
    client: Client, workflow: str, *args: Any, queue: str = "tests", **worker: Any
) -> tuple[Any, list[dict[str, Any]]]:
    """Run one workflow to its end on a fresh worker; return its result and history."""
    async with running_worker(
        client,
        task_queue=queue,
        workflows=defs.ALL_WORKFLOWS,
        activities=defs.ALL_ACTIVITIES,
        **worker,
    ):
        handle = await client.start_workflow(
            workflow, *args, id=f"wf-{uuid.uuid4().hex[:8]}", task_queue=queue
        )
        try:
            result: Any = await handle.result(timeout=30)
        except WorkflowFailureError as err:
            result = err
        return result, await handle.history()


def test_hello_in_process(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            result, history = await execute(client, "Hello", "Temporal")
            assert result == "Hello Temporal!"
            assert [e["id"] for e in history] == list(range(1, len(history) + 1))
            assert history[0]["type"] == "WorkflowExecutionStarted"
            assert history[-1]["type"] == "WorkflowExecutionCompleted"

    run(main())


def test_parallel_and_sequential_activities(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            result, history = await execute(client, "ParallelAndSequential", ["a", "b", "c"])
            assert result == {"parallel": ["Hello a!", "Hello b!", "Hello c!"], "chain": "xyyy"}
            scheduled = events_of(history, "ActivityTaskScheduled")
            assert [e["attrs"]["seq"] for e in scheduled] == [1, 2, 3, 4, 5, 6]
            # The three greetings were scheduled by one workflow task, before any completed.
            first_completion = events_of(history, "ActivityTaskCompleted")[0]["id"]
            assert all(e["id"] < first_completion for e in scheduled[:3])

    run(main())
    assert counts(url) == {"Greet": 3, "Echo": 3}


def test_activity_failure_is_caught_by_workflow_code(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            result, history = await execute(client, "CatchFailure", "boom")
            assert result == {
                "type": "ValueError",
                "message": "boom",
                "attempt": 2,
                "has_stack": True,
            }
            assert len(events_of(history, "ActivityTaskAttemptFailed")) == 1
            assert len(events_of(history, "ActivityTaskFailed")) == 1

    run(main())


def test_unhandled_exception_fails_the_workflow(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            result, history = await execute(client, "Unhandled", "bad things")
            assert isinstance(result, WorkflowFailureError)
            assert result.status == "FAILED"
            assert result.failure is not None
            assert (result.failure.type, result.failure.message) == ("RuntimeError", "bad things")
            assert history[-1]["type"] == "WorkflowExecutionFailed"
            assert "RuntimeError" in history[-1]["attrs"]["failure"]["stack"]

    run(main())


def test_retries_follow_the_policy_intervals(url: str) -> None:
    initial = 0.3

    async def main() -> None:
        async with await Client.connect(url) as client:
            result, history = await execute(client, "Retries", initial)
            assert result == "done after 3"
            failed = events_of(history, "ActivityTaskAttemptFailed")
            started = events_of(history, "ActivityTaskStarted")
            assert [e["attrs"]["attempt"] for e in started] == [1, 2, 3]
            assert [e["attrs"]["attempt"] for e in failed] == [1, 2]
            # With no jitter the recorded retry times are exact: 1x then 2x the initial interval.
            for n, event in enumerate(failed):
                planned = event["attrs"]["retry_at"] - event["ts"]
                assert planned == pytest.approx(initial * 1000 * 2**n, abs=2)
            # Each next attempt started no earlier than planned and soon after.
            for event, nxt in zip(failed, started[1:], strict=True):
                lateness = nxt["ts"] - event["attrs"]["retry_at"]
                assert 0 <= lateness < 1000

    run(main())
    assert counts(url)["FailTwice"] == 3


def test_non_retryable_failure_is_not_retried(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            result, history = await execute(client, "NonRetryable")
            assert result == "BadInput"
            assert not events_of(history, "ActivityTaskAttemptFailed")

    run(main())
    assert counts(url)["NotRetryable"] == 1


def test_schedule_to_close_timeout_stops_retries(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            result, history = await execute(client, "ScheduleToClose", 0.5)
            assert result == "ConnectionError"
            final = events_of(history, "ActivityTaskFailed")
            assert len(final) == 1 and final[0]["attrs"]["attempt"] == 1

    run(main())


def test_start_to_close_timeout_retries_the_attempt(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            # The first attempt outlives its 0.5 s timeout; the second is quick.
            result, history = await execute(client, "SlowActivity", 2.0, 0.5)
            assert result == "attempt 2"
            failed = events_of(history, "ActivityTaskAttemptFailed")
            assert [e["attrs"]["failure"]["type"] for e in failed] == ["TimeoutError"]

    run(main())


def test_dataclasses_round_trip(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            result, _ = await execute(client, "Dataclasses", defs.Order("tea", 4))
            assert result == {"item": "tea", "total": 10.0}

    run(main())


def test_duplicate_start_is_refused(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            first = await client.start_workflow("Hello", "x", id="dup", task_queue="nobody")
            with pytest.raises(WorkflowAlreadyStartedError) as info:
                await client.start_workflow("Hello", "y", id="dup", task_queue="nobody")
            assert info.value.run_id == first.run_id
            assert "already started" in str(info.value)
            desc = await client.get_workflow_handle("dup").describe()
            assert desc.status == "RUNNING" and desc.run_id == first.run_id

    run(main())


def test_describe_unknown_workflow(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            with pytest.raises(WorkflowNotFoundError):
                await client.get_workflow_handle("no-such-id").describe()

    run(main())


def test_closed_id_can_start_again(url: str) -> None:
    async def main() -> None:
        async with (
            await Client.connect(url) as client,
            running_worker(
                client,
                task_queue="tests",
                workflows=defs.ALL_WORKFLOWS,
                activities=defs.ALL_ACTIVITIES,
            ),
        ):
            first = await client.start_workflow("Hello", "a", id="again", task_queue="tests")
            assert await first.result(timeout=10) == "Hello a!"
            second = await client.start_workflow("Hello", "b", id="again", task_queue="tests")
            assert second.run_id != first.run_id
            assert await second.result(timeout=10) == "Hello b!"
            assert await first.result() == "Hello a!"

    run(main())


def test_streams_hold_no_finished_entries(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            await execute(client, "ParallelAndSequential", ["a", "b"])
            await execute(client, "CatchFailure", "x")
            r, keys = client.redis, client.keys
            for stream in (keys.workflow_tasks("tests", 0), keys.activity_tasks("tests", 0)):
                assert await r.xlen(stream) == 0
                assert (await r.xpending(stream, "workers"))["pending"] == 0
            assert await r.zcard(keys.timers(0)) == 0

    run(main())


def test_workflow_time_and_randomness_are_replayed(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            result, history = await execute(client, "Deterministic")
            first_task = events_of(history, "WorkflowTaskStarted")[0]
            assert result["info"] == "Deterministic"
            assert result["before"][0].startswith("20")
            # Time in workflow code is the start time of the workflow task.
            from datetime import UTC, datetime

            started = datetime.fromtimestamp(first_task["ts"] / 1000, tz=UTC)
            assert datetime.fromisoformat(result["before"][0]) == started

    run(main())


def test_unknown_workflow_type_fails_the_task_not_the_run(url: str) -> None:
    async def main() -> None:
        async with (
            await Client.connect(url) as client,
            running_worker(
                client,
                task_queue="tests",
                workflows=defs.ALL_WORKFLOWS,
            ),
        ):
            handle = await client.start_workflow("NoSuchWorkflow", id="unknown", task_queue="tests")

            async def failed() -> list[dict[str, Any]]:
                return events_of(await handle.history(), "WorkflowTaskFailed")

            failure = (await eventually(failed))[0]["attrs"]["failure"]
            assert failure["type"] == "WorkflowTaskError"
            assert "NoSuchWorkflow" in failure["message"]
            assert (await handle.describe()).status == "RUNNING"

    run(main())


def test_concurrency_limit_holds_across_shards(url: str) -> None:
    """With more shards than free slots, a poll reads no more entries than slots are free."""

    async def main() -> None:
        client = await Client.connect(url, namespace="sharded", shards=4)
        r = redis.Redis.from_url(url, decode_responses=True)
        try:
            async with running_worker(
                client,
                task_queue="tests",
                workflows=defs.ALL_WORKFLOWS,
                activities=defs.ALL_ACTIVITIES,
                max_concurrent_activities=1,
            ) as worker:
                handles = [
                    await client.start_workflow("Gated", [f"s{i}"], id=f"s-{i}", task_queue="tests")
                    for i in range(4)
                ]
                opened: set[str] = set()
                for _ in range(4):
                    running = await eventually(
                        lambda: returning(set(r.keys("started:s*")) - opened)
                    )
                    await asyncio.sleep(0.3)  # time enough for an over-eager poll to start more
                    assert set(r.keys("started:s*")) - opened == running and len(running) == 1
                    assert worker.slot_usage()["activity"] == (1, 0)
                    key = running.pop()
                    opened.add(key)
                    r.set(f"gate:{key.removeprefix('started:')}", 1)
                for handle in handles:
                    assert len(await handle.result(timeout=20)) == 3
        finally:
            r.close()
            await client.close()

    run(main())
