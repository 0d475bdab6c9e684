"""Start the hello world workflow and print its result.

    python starters/hello_world.py

Needs a worker (``python workers/hello_world.py``) on the same Redis.
"""

from __future__ import annotations

from orchestrator import Client
from orchestrator.entrypoint import run_program


async def main() -> None:
    client = await Client.connect()
    try:
        handle = await client.start_workflow(
            "Workflow", "Temporal", id="hello_world_workflowID", task_queue="hello-world"
        )
        print(f"Started workflow WorkflowID {handle.id} RunID {handle.run_id}")
        result = await handle.result()
        print(f"Workflow result: {result}")
    finally:
        await client.close()


if __name__ == "__main__":
    run_program(main())
