"""Start the ``Greetings`` workflow and print what each part returned.

    python starters/greetings.py [NAME]

Needs ``python workers/greetings.py`` running on the same Redis.
"""

from __future__ import annotations

import sys
import uuid

from orchestrator import Client
from orchestrator.entrypoint import run_program


async def main(name: str) -> None:
    client = await Client.connect()
    try:
        handle = await client.start_workflow(
            "Greetings", name, id=f"greetings-{uuid.uuid4().hex[:8]}", task_queue="greetings"
        )
        print(f"Started workflow WorkflowID {handle.id} RunID {handle.run_id}")
        result = await handle.result()
        print("Parallel:", ", ".join(result["parallel"]))
        print("Chain:   ", result["banner"])
        print("Retried: ", result["flaky"])
    finally:
        await client.close()


if __name__ == "__main__":
    run_program(main(sys.argv[1] if len(sys.argv) > 1 else "World"))
