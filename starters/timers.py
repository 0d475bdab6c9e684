"""Start a reminder due in 2 seconds and print when each of its steps happened.

    python starters/timers.py [MESSAGE]

Needs ``python workers/timers.py`` running on the same Redis. To see the timer survive a
restart, stop the worker while this waits and start it again within 2 seconds (or later:
the reminder then goes out as soon as the worker is back).
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator import Client
from orchestrator.entrypoint import run_program
from workers.timers import TASK_QUEUE, Step

DELAY_SECONDS = 2.0


async def main(message: str) -> None:
    client = await Client.connect()
    try:
        handle = await client.start_workflow(
            "Reminder",
            message,
            DELAY_SECONDS,
            id=f"reminder-{uuid.uuid4().hex[:8]}",
            task_queue=TASK_QUEUE,
        )
        print(f"Started workflow WorkflowID {handle.id} RunID {handle.run_id}")
        steps: list[Step] = await handle.result(result_type=list[Step])
        for step in steps:
            offset = (step.at - steps[0].at).total_seconds()
            clock = step.at.strftime("%H:%M:%S.%f")[:-3]  # milliseconds
            print(f"+{offset:5.2f} s  {clock} UTC  {step.what}")
    finally:
        await client.close()


if __name__ == "__main__":
    run_program(main(sys.argv[1] if len(sys.argv) > 1 else "stand up and stretch"))
