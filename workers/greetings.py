"""Greetings worker: parallel activities, a sequential chain, and retries.

Workflow ``Greetings`` on task queue ``greetings``:

1. greets in three languages at once (three activities gathered together);
2. builds a banner through a chain of activities, each fed the previous result;
3. calls ``FlakyGreeting``, which fails on its first two attempts and succeeds
   on the third: the retries show in this worker's log with their attempt numbers.

    python workers/greetings.py          # then: python starters/greetings.py
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from orchestrator import Client, RetryPolicy, Worker, activity, logs, workflow
from orchestrator.entrypoint import run_program

TASK_QUEUE = "greetings"
TIMEOUT = timedelta(seconds=10)


@activity.defn(name="ComposeGreeting")
async def compose_greeting(greeting: str, name: str) -> str:
    return f"{greeting}, {name}!"


@activity.defn(name="Upper")
def upper(text: str) -> str:
    return text.upper()


@activity.defn(name="Frame")
def frame(text: str) -> str:
    return f"*** {text} ***"


@activity.defn(name="FlakyGreeting")
def flaky_greeting(name: str) -> str:
    attempt = activity.info().attempt
    if attempt < 3:
        raise ConnectionError(f"greeting service unavailable (attempt {attempt})")
    return f"Hello {name}, on attempt {attempt}!"


@workflow.defn(name="Greetings")
async def greetings(name: str) -> dict[str, object]:
    parallel = await asyncio.gather(
        *(
            workflow.start_activity(compose_greeting, word, name, start_to_close_timeout=TIMEOUT)
            for word in ("Hello", "Bonjour", "Hola")
        )
    )

    banner = name
    for step in (upper, frame):
        banner = await workflow.execute_activity(step, banner, start_to_close_timeout=TIMEOUT)

    flaky = await workflow.execute_activity(
        flaky_greeting,
        name,
        start_to_close_timeout=TIMEOUT,
        retry_policy=RetryPolicy(initial_interval=0.5, maximum_attempts=5),
    )
    return {"parallel": list(parallel), "banner": banner, "flaky": flaky}


async def main() -> None:
    logs.configure("INFO")
    client = await Client.connect()
    try:
        worker = Worker(
            client,
            task_queue=TASK_QUEUE,
            workflows=[greetings],
            activities=[compose_greeting, upper, frame, flaky_greeting],
        )
        await worker.run()
    finally:
        await client.close()


if __name__ == "__main__":
    run_program(main())
