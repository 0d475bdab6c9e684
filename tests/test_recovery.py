"""Recovery: replay after a worker restart, fencing of stale attempts, non-determinism."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import redis

from orchestrator import Client, scripts, workflow
from orchestrator.keys import CONSUMER_GROUP
from orchestrator.timers import Timer

import defs
from helpers import events_of, eventually, run, running_worker


def count(url: str, name: str) -> int:
    with redis.Redis.from_url(url, decode_responses=True) as r:
        return int(r.get(f"count:{name}") or 0)


async def gate_started(client: Client, gate: str) -> bool:
    return bool(await client.redis.get(f"started:{gate}"))


def test_restarted_worker_replays_without_rerunning_activities(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            options: dict[str, Any] = dict(
                task_queue="replay",
                workflows=defs.ALL_WORKFLOWS,
                activities=defs.ALL_ACTIVITIES,
                graceful_shutdown_timeout=0.2,
            )
            async with running_worker(client, **options):
                handle = await client.start_workflow(
                    "Gated", ["g1"], id="replay", task_queue="replay"
                )
                await eventually(lambda: gate_started(client, "g1"))
            # The first worker is gone; a new one (empty cache) must rebuild from history.
            await client.redis.set("gate:g1", "1")
            async with running_worker(client, **options):
                assert await handle.result(timeout=20) == [
                    "Hello first!",
                    "gate g1 opened",
                    "Hello last!",
                ]

    run(main())
    assert count(url, "Greet") == 2  # "first" ran once, not again on replay


def test_late_completion_from_timed_out_attempt_is_refused(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            keys, r = client.keys, client.redis
            # A worker that runs workflow tasks and fires timers, but runs no activities.
            async with running_worker(client, task_queue="late", workflows=defs.ALL_WORKFLOWS):
                handle = await client.start_workflow("Hello", "x", id="late", task_queue="late")
                stream = keys.activity_tasks("late", 0)
                await r.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
                zombie = await _take_activity_task(client, stream)
                wid, rid, seq = zombie["w"], zombie["r"], int(zombie["s"])
                act_keys = [
                    keys.activity(wid, rid, seq),
                    keys.run(wid, rid),
                    keys.history(wid, rid),
                ]
                timer = Timer("stc", wid, rid, seq, zombie["id"], "late", "late")
                reply = await scripts.ACTIVITY_START(
                    r,
                    [*act_keys, stream, keys.timers(0)],
                    [zombie["id"], CONSUMER_GROUP, "zombie", 300, timer.member(), 0, ""],
                )
                assert reply[0] == "OK"

                async def timed_out() -> list[dict[str, Any]]:
                    return events_of(await handle.history(), "ActivityTaskAttemptFailed")

                await eventually(timed_out)
                report_keys = [*act_keys, keys.workflow_tasks("late", 0), keys.timers(0)]
                late = await scripts.ACTIVITY_COMPLETE(r, report_keys, [zombie["id"], '"zombie"'])
                assert late == ["STALE"]
                late_fail = await scripts.ACTIVITY_FAIL(
                    r, report_keys, [zombie["id"], "{}", "X", "0", 0.5, timer.retry().member()]
                )
                assert late_fail == ["STALE"]

            async with running_worker(
                client,
                task_queue="late",
                workflows=defs.ALL_WORKFLOWS,
                activities=defs.ALL_ACTIVITIES,
            ):
                assert await handle.result(timeout=20) == "Hello x!"
            history = await handle.history()
            completed = events_of(history, "ActivityTaskCompleted")
            assert [e["attrs"]["attempt"] for e in completed] == [2]
            assert (
                events_of(history, "ActivityTaskAttemptFailed")[0]["attrs"]["failure"]["type"]
                == "TimeoutError"
            )

    run(main())


async def _take_activity_task(client: Client, stream: str) -> dict[str, str]:
    async def read() -> Any:
        return await client.redis.xreadgroup(
            CONSUMER_GROUP, "zombie", {stream: ">"}, count=1, block=100
        )

    reply = await eventually(read)
    entry_id, fields = reply[0][1][0]
    return {"id": entry_id, **fields}


def test_silent_workflow_task_times_out_and_is_redelivered(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            keys, r = client.keys, client.redis
            stream = keys.workflow_tasks("wft", 0)
            await r.xgroup_create(stream, CONSUMER_GROUP, id="0", mkstream=True)
            handle = await client.start_workflow("Hello", "y", id="wft", task_queue="wft")
            # A worker that takes the task, starts it and dies.
            reply = await r.xreadgroup(CONSUMER_GROUP, "zombie", {stream: ">"}, count=1)
            entry_id, fields = reply[0][1][0]
            timer = Timer("wft_timeout", fields["w"], fields["r"], 0, entry_id, "", "wft")
            started = await scripts.WORKFLOW_TASK_START(
                r,
                [
                    keys.run("wft", handle.run_id),
                    keys.history("wft", handle.run_id),
                    stream,
                    keys.timers(0),
                ],
                [entry_id, CONSUMER_GROUP, "zombie", 300, timer.member(), 0],
            )
            assert started[0] == "OK"
            async with running_worker(
                client,
                task_queue="wft",
                workflows=defs.ALL_WORKFLOWS,
                activities=defs.ALL_ACTIVITIES,
            ):
                assert await handle.result(timeout=20) == "Hello y!"
            history = await handle.history()
            assert len(events_of(history, "WorkflowTaskTimedOut")) == 1
            assert [e["attrs"]["attempt"] for e in events_of(history, "WorkflowTaskStarted")][
                :2
            ] == [1, 2]

    run(main())


@workflow.defn(name="Changing")
async def changing_v1(gate: str) -> str:
    await workflow.execute_activity(defs.greet, "v1", start_to_close_timeout=10)
    return await workflow.execute_activity(
        defs.wait_for_gate, gate, start_to_close_timeout=timedelta(seconds=10)
    )


@workflow.defn(name="Changing")
async def changing_v2(gate: str) -> str:
    await workflow.execute_activity(defs.echo, "v2", start_to_close_timeout=10)
    return await workflow.execute_activity(
        defs.wait_for_gate, gate, start_to_close_timeout=timedelta(seconds=10)
    )


def test_changed_workflow_code_is_reported_as_non_determinism(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            async with running_worker(
                client,
                task_queue="nd",
                workflows=[changing_v1],
                activities=defs.ALL_ACTIVITIES,
                graceful_shutdown_timeout=0.2,
            ):
                handle = await client.start_workflow("Changing", "nd", id="nd", task_queue="nd")
                await eventually(lambda: gate_started(client, "nd"))
            # The old code's worker is gone mid-activity; the new code picks the run up.
            await client.redis.set("gate:nd", "1")
            async with running_worker(
                client, task_queue="nd", workflows=[changing_v2], activities=defs.ALL_ACTIVITIES
            ):

                async def task_failed() -> list[dict[str, Any]]:
                    return events_of(await handle.history(), "WorkflowTaskFailed")

                failure = (await eventually(task_failed))[0]["attrs"]["failure"]
            assert failure["type"] == "NonDeterminismError"
            assert "'Greet'" in failure["message"] and "'Echo'" in failure["message"]
            assert (await handle.describe()).status == "RUNNING"

    run(main())
