"""Create a schedule that greets every 5 seconds, watch two runs, then delete it.

    python starters/schedules.py

Needs ``python workers/schedules.py`` running on the same Redis: the worker
both drives the schedule and runs the workflows it starts.
"""

from __future__ import annotations

import asyncio
import contextlib

from orchestrator import Client, ScheduleAction, ScheduleNotFoundError, ScheduleSpec
from orchestrator.entrypoint import run_program

SCHEDULE_ID = "greet-every-5s"


async def main() -> None:
    client = await Client.connect()
    schedules = client.schedules
    try:
        # Left over from an interrupted earlier run? Start afresh.
        with contextlib.suppress(ScheduleNotFoundError):
            await schedules.delete(SCHEDULE_ID)
        await schedules.create(
            SCHEDULE_ID,
            ScheduleSpec(interval=5),
            ScheduleAction("ScheduledGreeting", task_queue="schedules", args=["Temporal"]),
        )
        for summary in await schedules.list():
            print(f"Schedule {summary.schedule_id}: next fire time {summary.next_fire_time}")
        described = await schedules.describe(SCHEDULE_ID)
        upcoming = ", ".join(t.strftime("%H:%M:%S") for t in described.next_fire_times)
        print(f"Overlap policy {described.overlap}; upcoming fire times {upcoming}")

        seen: set[str] = set()
        while len(seen) < 2:
            await asyncio.sleep(0.5)
            described = await schedules.describe(SCHEDULE_ID)
            for action in reversed(described.recent_actions):
                if action.workflow_id not in seen:
                    seen.add(action.workflow_id)
                    result = await client.get_workflow_handle(action.workflow_id).result()
                    print(f"Workflow {action.workflow_id}: {result}")

        await schedules.delete(SCHEDULE_ID)
        print(f"Deleted schedule {SCHEDULE_ID} after {described.action_count} runs")
    finally:
        await client.close()


if __name__ == "__main__":
    run_program(main())
