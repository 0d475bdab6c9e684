"""Timers worker: a reminder that sleeps durably, and activities raced against a timeout.

Workflow ``Reminder(message, delay_seconds)`` on task queue ``timers``:

1. sleeps ``delay_seconds`` with ``workflow.sleep``. The timer is recorded in the run's
   history and kept in Redis, not in this process: it survives worker restarts. Kill this
   worker during the sleep (Ctrl-C, or even ``kill -9``) and start it again, or start another
   one: the reminder still goes out on time, or as soon as a worker runs if the time passed
   while none did;
2. sends the reminder (activity ``SendReminder``);
3. races the activity ``LookUpCalendar`` against a 1 s timeout with ``asyncio.wait_for``,
   twice. The quick lookup wins; the slow one loses, is cancelled (it heartbeats, so it
   hears of it and stops), and the workflow carries on without its answer. An asyncio
   timeout in workflow code is a durable timer too.

Each step is stamped with ``workflow.now()``, the time its workflow task started; the
workflow returns the steps and the starter prints them.

    python workers/timers.py             # then: python starters/timers.py
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from orchestrator import Client, Worker, activity, logs, workflow
from orchestrator.entrypoint import run_program

TASK_QUEUE = "timers"
RACE_TIMEOUT = 1.0  # seconds a calendar lookup may take before the workflow gives up on it
LOOKUPS = (0.2, 5.0)  # how long each lookup takes: the first wins the race, the second loses


@dataclass
class Step:
    what: str
    at: datetime


@activity.defn(name="SendReminder")
def send_reminder(message: str) -> str:
    return f"reminder sent: {message}"


@activity.defn(name="LookUpCalendar")
async def look_up_calendar(seconds: float) -> str:
    """Stand in for a calendar service that answers after ``seconds``.

    It heartbeats while it waits: heartbeats are how a running activity learns that the
    workflow cancelled it (the worker then cancels this coroutine).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        activity.heartbeat()
        await asyncio.sleep(0.1)
    return "the calendar is free at 10:00"


@workflow.defn(name="Reminder")
async def reminder(message: str, delay_seconds: float) -> list[Step]:
    steps: list[Step] = []

    def stamp(what: str) -> None:
        steps.append(Step(what, workflow.now()))

    stamp(f"started; sleeping {delay_seconds:g} s")
    await workflow.sleep(delay_seconds)
    stamp("timer fired")
    stamp(
        await workflow.execute_activity(
            send_reminder, message, start_to_close_timeout=timedelta(seconds=10)
        )
    )

    for seconds in LOOKUPS:
        lookup = workflow.execute_activity(
            look_up_calendar, seconds, start_to_close_timeout=30, heartbeat_timeout=2
        )
        try:
            answer = await asyncio.wait_for(lookup, timeout=RACE_TIMEOUT)
        except TimeoutError:
            stamp(f"{seconds:g} s lookup lost the race against {RACE_TIMEOUT:g} s; going on")
        else:
            stamp(f"{seconds:g} s lookup won the race: {answer}")
    return steps


async def main() -> None:
    logs.configure("INFO")
    client = await Client.connect()
    try:
        worker = Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[reminder],
            activities=[send_reminder, look_up_calendar],
        )
        await worker.run()
    finally:
        await client.close()


if __name__ == "__main__":
    run_program(main())
