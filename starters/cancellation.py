"""Start a long backup, cancel it after a moment, and show that its cleanup ran.

    python starters/cancellation.py

Needs ``python workers/cancellation.py`` running on the same Redis. Prints the run's final
status (CANCELED), then what its history records: how far the copy got before it stopped,
and the cleanup activity's result.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator import Client, WorkflowFailureError, WorkflowHandle, history
from orchestrator.entrypoint import run_program
from workers.cancellation import TASK_QUEUE

FILES = 1000  # 100 s of copying: far longer than we let it run


async def activity_outcomes(handle: WorkflowHandle) -> list[str]:
    """One line per activity that ended, read from the run's history."""
    names: dict[int, str] = {}
    lines = []
    for event in await handle.history():
        kind, attrs = event["type"], event["attrs"]
        if kind == history.ACTIVITY_TASK_SCHEDULED:
            names[attrs["seq"]] = attrs["activity_type"]
        elif kind == history.ACTIVITY_TASK_CANCELED:
            done = attrs["details"][0] if attrs["details"] else 0
            lines.append(f"{names[attrs['seq']]} canceled after {done} of {FILES} files")
        elif kind == history.ACTIVITY_TASK_COMPLETED:
            lines.append(f"{names[attrs['seq']]} completed: {attrs['result']}")
    return lines


async def main() -> int:
    client = await Client.connect()
    try:
        job = f"backup-{uuid.uuid4().hex[:8]}"
        handle = await client.start_workflow("Backup", job, FILES, id=job, task_queue=TASK_QUEUE)
        print(f"Started workflow WorkflowID {handle.id} RunID {handle.run_id}")
        await asyncio.sleep(1.5)

        await handle.cancel("the user changed their mind")
        print("Cancellation requested")
        try:
            result = await handle.result()
        except WorkflowFailureError as err:
            print(f"Final status: {err.status}")
        else:
            print(f"The backup finished before it could be cancelled: {result}")
            return 1
        for line in await activity_outcomes(handle):
            print(line)
    finally:
        await client.close()
    return 0


if __name__ == "__main__":
    run_program(main())
