"""Hello world worker: workflow ``Workflow`` calls activity ``Activity`` on ``hello-world``.

Run it next to a Redis (ORCHESTRATOR_REDIS_URL, default redis://localhost:6379/0):

    python workers/hello_world.py

then start the workflow with ``python starters/hello_world.py``. Stop with Ctrl-C.
"""

from __future__ import annotations

from datetime import timedelta

from orchestrator import Client, Worker, activity, logs, workflow
from orchestrator.entrypoint import run_program

TASK_QUEUE = "hello-world"


@activity.defn(name="Activity")
def say_hello(name: str) -> str:
    return "Hello " + name + "!"


@workflow.defn(name="Workflow")
async def hello_workflow(name: str) -> str:
    return await workflow.execute_activity(
        say_hello, name, start_to_close_timeout=timedelta(seconds=10)
    )


async def main() -> None:
    logs.configure("INFO")
    client = await Client.connect()
    try:
        worker = Worker(
            client, task_queue=TASK_QUEUE, workflows=[hello_workflow], activities=[say_hello]
        )
        await worker.run()
    finally:
        await client.close()


if __name__ == "__main__":
    run_program(main())
