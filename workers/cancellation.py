"""Cancellation worker: a long activity that heartbeats, and a cleanup when the run is cancelled.

Workflow ``Backup(job, files)`` on task queue ``cancellation`` runs the activity
``CopyFiles``, which copies ``files`` files, one per 0.1 s, and heartbeats after each:

- the heartbeat carries how many files are done, so that a retry after a crash resumes from
  there (``activity.info().heartbeat_details``);
- ``heartbeat_timeout=2 s`` fails an attempt whose worker stopped heartbeating long before
  its 10-minute start-to-close timeout would;
- heartbeats are also how a running activity hears that it was cancelled: the worker then
  cancels the activity's coroutine.

Cancel the run (``handle.cancel()``, or ``orchestrator workflow cancel -w <id>``) and the
workflow's ``await`` raises ``asyncio.CancelledError``. With
``ActivityCancellationType.WAIT_CANCELLATION_COMPLETED`` it is raised only once ``CopyFiles``
has actually stopped, so the cleanup activity ``RemovePartialCopy`` that the workflow runs
next cannot race a copy still in progress. The workflow then re-raises the error, and the
run closes as CANCELED. (Swallowing it instead would let the run complete normally.)

    python workers/cancellation.py       # then: python starters/cancellation.py
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from orchestrator import ActivityCancellationType, Client, Worker, activity, logs, workflow
from orchestrator.entrypoint import run_program

TASK_QUEUE = "cancellation"

logger = logging.getLogger("workers.cancellation")


@activity.defn(name="CopyFiles")
async def copy_files(job: str, files: int) -> int:
    details = activity.info().heartbeat_details
    done = int(details[0]) if details else 0  # resume where the last attempt stopped
    try:
        while done < files:
            await asyncio.sleep(0.1)  # copy one file
            done += 1
            activity.heartbeat(done)
    except asyncio.CancelledError:
        logger.info("%s: copy cancelled after %d of %d files", job, done, files)
        raise
    return done


@activity.defn(name="RemovePartialCopy")
def remove_partial_copy(job: str) -> str:
    return f"removed the partial copy of {job}"


@workflow.defn(name="Backup")
async def backup(job: str, files: int) -> str:
    try:
        copied = await workflow.execute_activity(
            copy_files,
            job,
            files,
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(seconds=2),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
    except asyncio.CancelledError:
        workflow.logger.info("%s cancelled; cleaning up", job)
        await workflow.execute_activity(
            remove_partial_copy, job, start_to_close_timeout=timedelta(seconds=10)
        )
        raise
    return f"{job}: copied {copied} files"


async def main() -> None:
    logs.configure("INFO")
    client = await Client.connect()
    try:
        worker = Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[backup],
            activities=[copy_files, remove_partial_copy],
        )
        await worker.run()
    finally:
        await client.close()


if __name__ == "__main__":
    run_program(main())
