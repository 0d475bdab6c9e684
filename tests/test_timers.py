"""Durable timers: workflow.sleep, asyncio timeouts, wait_condition, across restarts."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import Client, WorkflowFailureError

import defs
from helpers import events_of, eventually, run, running_worker

OPTIONS: dict[str, Any] = dict(
    task_queue="timers", workflows=defs.ALL_WORKFLOWS, activities=defs.ALL_ACTIVITIES
)


def test_sleep_waits_its_duration_then_continues(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            handle = await client.start_workflow("Sleeper", 0.5, id="s", task_queue="timers")
            assert await handle.result(timeout=20) == "Hello after sleep!"
            history = await handle.history()
            (started,) = events_of(history, "TimerStarted")
            (fired,) = events_of(history, "TimerFired")
            assert started["attrs"]["duration_ms"] == 500
            assert fired["ts"] >= started["attrs"]["fire_at"] >= started["ts"] + 500

    run(main())
    assert not [r for r in caplog.records if "loop failed" in r.getMessage()]


def test_timer_survives_a_worker_restart_and_fires_once_with_two_workers(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            async with running_worker(client, **OPTIONS):
                handle = await client.start_workflow("Sleeper", 1.5, id="r", task_queue="timers")

                async def timer_started() -> bool:
                    return bool(events_of(await handle.history(), "TimerStarted"))

                await eventually(timer_started)
            # No worker while the timer runs; then two at once race to fire it.
            async with running_worker(client, **OPTIONS), running_worker(client, **OPTIONS):
                assert await handle.result(timeout=20) == "Hello after sleep!"
            history = await handle.history()
            assert len(events_of(history, "TimerFired")) == 1
            assert await client.redis.zcard(client.keys.timers(0)) == 0

    run(main())


def test_wait_condition_times_out(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            handle = await client.start_workflow(
                "WaitWithTimeout", 0.3, id="w", task_queue="timers"
            )
            assert await handle.result(timeout=20) == "timed out"

    run(main())


def test_run_timeout_closes_the_run_as_timed_out(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            handle = await client.start_workflow(
                "Approval", 5, id="rt", task_queue="timers", run_timeout=0.5
            )
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result(timeout=20)
            assert info.value.status == "TIMED_OUT"
            history = await handle.history()
            assert history[-1]["type"] == "WorkflowExecutionTimedOut"
            assert history[-1]["ts"] - history[0]["ts"] >= 500

    run(main())


def test_execution_timeout_spans_continue_as_new(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            first = await client.start_workflow(
                "Counter", 0, 10**6, id="et", task_queue="timers", execution_timeout=1.0
            )
            with pytest.raises(WorkflowFailureError) as info:
                await first.result(timeout=20)
            assert info.value.status == "TIMED_OUT"
            last = await client.get_workflow_handle("et").describe()
            assert last.run_id != first.run_id  # several runs, one deadline

    run(main())
