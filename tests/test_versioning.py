"""Continue-as-new, patched() versioning and the replayer."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator import Client, NonDeterminismError, workflow
from orchestrator.replayer import Replayer, load_history

import defs
from helpers import events_of, eventually, run, running_worker

OPTIONS: dict[str, Any] = dict(
    task_queue="versions", workflows=defs.ALL_WORKFLOWS, activities=defs.ALL_ACTIVITIES
)


def test_continue_as_new_starts_fresh_runs_under_one_id(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            first = await client.start_workflow("Counter", 0, 3, id="cnt", task_queue="versions")
            assert await first.result(timeout=20) == 3  # followed through every run
            current = await client.get_workflow_handle("cnt").describe()
            assert current.status == "COMPLETED" and current.run_id != first.run_id
            assert (await first.describe()).status == "CONTINUED_AS_NEW"
            latest = await client.get_workflow_handle("cnt").history()
            assert latest[0]["type"] == "WorkflowExecutionStarted"
            assert latest[0]["attrs"]["input"] == [3, 3]
            assert len(latest) < 10  # a fresh history, not the whole chain
            old = await first.history()
            assert old[-1]["type"] == "WorkflowExecutionContinuedAsNew"

    run(main())


@workflow.defn(name="Versioned")
async def versioned_v1(name: str, gate: str) -> list[str]:
    out = [await workflow.execute_activity(defs.greet, name, start_to_close_timeout=10)]
    out.append(await workflow.execute_activity(defs.wait_for_gate, gate, start_to_close_timeout=10))
    return out


def test_patched_keeps_old_runs_on_their_path(url: str) -> None:
    async def main() -> None:
        async with await Client.connect(url) as client:
            # A run that passes the patch point under the old code, then the code changes.
            old_code = dict(
                task_queue="versions",
                workflows=[versioned_v1],
                activities=defs.ALL_ACTIVITIES,
                graceful_shutdown_timeout=0.2,
            )
            async with running_worker(client, **old_code):
                old = await client.start_workflow(
                    "Versioned", "old", "v1", id="v-old", task_queue="versions"
                )
                await eventually(lambda: client.redis.get("started:v1"))
            await client.redis.set("gate:v1", "1")
            await client.redis.set("gate:v2", "1")
            async with running_worker(client, **OPTIONS):
                new = await client.start_workflow(
                    "Versioned", "new", "v2", id="v-new", task_queue="versions"
                )
                assert await old.result(timeout=20) == ["Hello old!", "gate v1 opened"]
                assert await new.result(timeout=20) == ["Hello new!", "patched", "gate v2 opened"]
            assert not events_of(await old.history(), "MarkerRecorded")
            (marker,) = events_of(await new.history(), "MarkerRecorded")
            assert marker["attrs"]["patch_id"] == "add-echo"

            # The replayer accepts both histories with the patched code...
            replayer = Replayer([defs.versioned])
            replayer.replay(await old.history())
            replayer.replay(await new.history())
            # ...and reports the old code replaying the new history as non-determinism.
            with pytest.raises(NonDeterminismError, match="MarkerRecorded"):
                Replayer([versioned_v1]).replay(await new.history())

    run(main())


def test_replayer_reads_exported_json(url: str, tmp_path: Any) -> None:
    async def main() -> list[dict[str, Any]]:
        async with await Client.connect(url) as client, running_worker(client, **OPTIONS):
            handle = await client.start_workflow(
                "ParallelAndSequential", ["a", "b"], id="exp", task_queue="versions"
            )
            await handle.result(timeout=20)
            return await handle.history()

    events = run(main())
    import orjson

    as_array = tmp_path / "history.json"
    as_array.write_bytes(orjson.dumps(events))
    as_lines = tmp_path / "history.jsonl"
    as_lines.write_bytes(b"\n".join(orjson.dumps(e) for e in events))
    for path in (as_array, as_lines):
        assert load_history(path) == events
        assert Replayer(defs.ALL_WORKFLOWS).check(path).ok

    @workflow.defn(name="ParallelAndSequential")
    async def changed(names: list[str]) -> None:
        await workflow.execute_activity(defs.echo, 1, start_to_close_timeout=5)

    result = Replayer([changed]).check(as_array)
    assert not result.ok and isinstance(result.error, NonDeterminismError)
