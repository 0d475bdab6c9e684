"""Schedules worker: runs the ``ScheduledGreeting`` workflow, and drives schedules.

Every worker drives the namespace's schedules unless told not to
(``drive_schedules=False``); run two of these and each firing still starts
one workflow, from whichever worker got there first.

    python workers/schedules.py          # then: python starters/schedules.py
"""

from __future__ import annotations

from datetime import timedelta

from orchestrator import Client, Worker, activity, logs, workflow
from orchestrator.entrypoint import run_program

TASK_QUEUE = "schedules"


@activity.defn(name="StampGreeting")
def stamp_greeting(name: str, started: str) -> str:
    return f"Hello {name}! (run started {started})"


@workflow.defn(name="ScheduledGreeting")
async def scheduled_greeting(name: str) -> str:
    started = workflow.now().strftime("%H:%M:%S")
    return await workflow.execute_activity(
        stamp_greeting, name, started, start_to_close_timeout=timedelta(seconds=10)
    )


async def main() -> None:
    logs.configure("INFO")
    client = await Client.connect()
    try:
        worker = Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[scheduled_greeting],
            activities=[stamp_greeting],
        )
        await worker.run()
    finally:
        await client.close()


if __name__ == "__main__":
    run_program(main())
