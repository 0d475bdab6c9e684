"""Heartbeats, heartbeat and schedule-to-start timeouts, cancelling workflows and activities."""

from __future__ import annotations

import time
from typing import Any

import pytest

from orchestrator import Client, WorkflowFailureError, WorkflowNotRunningError

import defs
from helpers import events_of, eventually, run, running_worker

OPTIONS: dict[str, Any] = dict(
    task_queue="cancel", workflows=defs.ALL_WORKFLOWS, activities=defs.ALL_ACTIVITIES
)


def test_heartbeat_timeout_fails_a_silent_attempt_and_the_next_resumes(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            began = time.monotonic()
            handle = await client.start_workflow(
                "HeartbeatResume", "hb", id="hb", task_queue="cancel"
            )
            assert await handle.result(timeout=20) == [2, 3]
            assert time.monotonic() - began < 10  # long before the 30 s start-to-close
            failed = events_of(await handle.history(), "ActivityTaskAttemptFailed")
            assert [e["attrs"]["failure"]["timeout_type"] for e in failed] == ["HEARTBEAT"]

    run(main())


def test_heartbeats_are_throttled(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            before = (await client.redis.info("commandstats")).get("cmdstat_evalsha", {})
            handle = await client.start_workflow(
                "ChattyWorkflow", 5000, id="chatty", task_queue="cancel"
            )
            assert await handle.result(timeout=20) == 5000
            after = (await client.redis.info("commandstats"))["cmdstat_evalsha"]
            # 5000 heartbeats, but only a handful of script calls for the whole workflow.
            assert after["calls"] - before.get("calls", 0) < 30

    run(main())


@pytest.mark.parametrize("wait", [True, False])
def test_cancel_during_a_heartbeating_activity(url: str, wait: bool) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            gate = f"c{int(wait)}"
            handle = await client.start_workflow(
                "CancelWithCleanup", gate, wait, id=gate, task_queue="cancel"
            )
            await eventually(lambda: client.redis.get(f"started:{gate}"))
            await handle.cancel("user asked")
            with pytest.raises(WorkflowFailureError) as info:
                await handle.result(timeout=20)
            assert info.value.status == "CANCELED"
            await eventually(lambda: client.redis.get(f"cancelled:{gate}"))
            history = await handle.history()
            kinds = [e["type"] for e in history]
            assert "WorkflowExecutionCancelRequested" in kinds
            assert "ActivityTaskCancelRequested" in kinds
            compensated = [
                e
                for e in events_of(history, "ActivityTaskCompleted")
                if e["attrs"]["result"] == f"undid {gate}"
            ]
            assert len(compensated) == 1
            if wait:
                # The workflow waited for the activity to acknowledge before compensating.
                assert kinds.index("ActivityTaskCanceled") < kinds.index("ActivityTaskCompleted")
            assert kinds[-1] == "WorkflowExecutionCanceled"

    run(main())


def test_cancelling_an_unstarted_activity_leaves_its_task_for_a_worker_to_drop(url: str) -> None:
    """The queued entry is not deleted unread: that would corrupt the group's lag, which
    autoscalers read. The first worker to read it drops it, and the lag is 0 again."""

    async def main() -> None:
        async with await Client.connect(url) as client:
            stream = client.keys.activity_tasks("nowhere", 0)
            await client.redis.xgroup_create(stream, "workers", id="0", mkstream=True)
            async with running_worker(client, **OPTIONS):
                handle = await client.start_workflow(
                    "CancelUnstarted", id="cu", task_queue="cancel"
                )
                assert await handle.result(timeout=20) == "cancelled"
            history = await handle.history()
            assert len(events_of(history, "ActivityTaskCanceled")) == 1
            assert await client.redis.xlen(stream) == 1
            async with running_worker(client, task_queue="nowhere", activities=[defs.greet]):
                await eventually(lambda: _drained(client, stream))
            assert len(await handle.history()) == len(history)  # nothing ran, nothing new

    run(main())


async def _drained(client: Client, stream: str) -> bool:
    [group] = await client.redis.xinfo_groups(stream)
    return await client.redis.xlen(stream) == 0 and group["lag"] == 0 and group["pending"] == 0


def test_schedule_to_start_timeout(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            handle = await client.start_workflow("ScheduleToStart", id="s2s", task_queue="cancel")
            result = await handle.result(timeout=20)
            assert result.startswith("TimeoutError")
            (event,) = events_of(await handle.history(), "ActivityTaskTimedOut")
            assert event["attrs"]["failure"]["timeout_type"] == "SCHEDULE_TO_START"

    run(main())


def test_cancel_of_a_closed_workflow_is_refused(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            handle = await client.start_workflow("Hello", "x", id="done", task_queue="cancel")
            await handle.result(timeout=20)
            with pytest.raises(WorkflowNotRunningError):
                await handle.cancel()

    run(main())
